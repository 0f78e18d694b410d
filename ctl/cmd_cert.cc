// ukaictl ca init, cert issue|list|revoke|show: the cluster's certificate
// authority, run on the operator's host (security/pki.h). No cluster needed.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "ctl/ukaictl.h"
#include "security/files.h"
#include "security/pki.h"

namespace ukai::ctl {
namespace {

using security::CertInfo;

struct CertArgs {
  std::string ca, name = "ukai", role, id, out, path;
  int days = 365;
  std::vector<std::string> serials;
};

std::string CaDir(const CertArgs& a) {
  if (!a.ca.empty()) return a.ca;
  const char* env = getenv("UKAI_CA_DIR");
  return env && *env ? env : "/etc/ukai/ca";
}

std::string Day(absl::Time t) { return absl::FormatTime("%Y-%m-%d %H:%M", t, absl::UTCTimeZone()); }

json CertJson(const CertInfo& c) {
  return json{{"serial", c.serial},
              {"role", std::string(security::RoleName(c.who.role))},
              {"id", c.who.id},
              {"not_before", absl::FormatTime(c.not_before)},
              {"not_after", absl::FormatTime(c.not_after)}};
}

absl::Status CaInit(const Cli& cli, const CertArgs& a) {
  const std::string dir = CaDir(a);
  RETURN_IF_ERROR(security::InitCa(dir, a.name, absl::Now()));
  if (cli.g.json) {
    PrintJson(json{{"ca", dir}, {"name", a.name}});
  } else {
    printf("CA \"%s\" made in %s: ca.pem goes to every host; ca.key stays here, private\n",
           a.name.c_str(), dir.c_str());
  }
  return absl::OkStatus();
}

absl::Status CertIssue(const Cli& cli, const CertArgs& a) {
  ASSIGN_OR_RETURN(security::Role role, security::ParseRole(a.role));
  if (a.days < 1 || a.days > 3650) {
    return absl::InvalidArgumentError("--days must be between 1 and 3650");
  }
  ASSIGN_OR_RETURN(CertInfo c, security::IssueCert(CaDir(a), {role, a.id}, absl::Hours(24 * a.days),
                                                   a.out, absl::Now()));
  if (cli.g.json) {
    json j = CertJson(c);
    j["dir"] = a.out;
    PrintJson(j);
  } else {
    printf("issued %s, serial %s, valid until %s UTC, in %s\n", c.who.ToString().c_str(),
           c.serial.c_str(), Day(c.not_after).c_str(), a.out.c_str());
  }
  return absl::OkStatus();
}

absl::Status CertList(const Cli& cli, const CertArgs& a) {
  ASSIGN_OR_RETURN(auto certs, security::ListIssued(CaDir(a)));
  const absl::Time now = absl::Now();
  auto state = [now](const security::IssuedCert& c) {
    return c.revoked ? "revoked" : c.info.not_after < now ? "expired" : "valid";
  };
  if (cli.g.json) {
    json arr = json::array();
    for (const auto& c : certs) {
      json j = CertJson(c.info);
      j["state"] = state(c);
      arr.push_back(j);
    }
    PrintJson(arr);
    return absl::OkStatus();
  }
  printf("%-32s  %-8s  %-24s  %-16s  %s\n", "SERIAL", "ROLE", "ID", "NOT AFTER (UTC)", "STATE");
  for (const auto& c : certs) {
    printf("%-32s  %-8s  %-24s  %-16s  %s\n", c.info.serial.c_str(),
           std::string(security::RoleName(c.info.who.role)).c_str(), c.info.who.id.c_str(),
           Day(c.info.not_after).c_str(), state(c));
  }
  return absl::OkStatus();
}

// The serials given, or those of every valid certificate of --role/--id.
absl::StatusOr<std::vector<std::string>> SerialsToRevoke(const CertArgs& a) {
  if (!a.serials.empty()) return a.serials;
  if (a.role.empty() || a.id.empty()) {
    return absl::InvalidArgumentError("give SERIAL..., or --role and --id");
  }
  ASSIGN_OR_RETURN(security::Role role, security::ParseRole(a.role));
  ASSIGN_OR_RETURN(auto certs, security::ListIssued(CaDir(a)));
  std::vector<std::string> out;
  for (const auto& c : certs) {
    if (c.info.who == security::Identity{role, a.id} && !c.revoked) out.push_back(c.info.serial);
  }
  if (out.empty()) return absl::NotFoundError("no unrevoked certificate of " + a.role + " " + a.id);
  return out;
}

absl::Status CertRevoke(const Cli& cli, const CertArgs& a) {
  ASSIGN_OR_RETURN(auto serials, SerialsToRevoke(a));
  ASSIGN_OR_RETURN(auto done, security::Revoke(CaDir(a), serials, absl::Now()));
  const std::string crl = CaDir(a) + "/crl.pem";
  if (cli.g.json) {
    json arr = json::array();
    for (const auto& c : done) arr.push_back(CertJson(c));
    PrintJson(json{{"revoked", arr}, {"crl", crl}});
    return absl::OkStatus();
  }
  for (const auto& c : done) {
    printf("revoked %s (serial %s)\n", c.who.ToString().c_str(), c.serial.c_str());
  }
  printf("copy %s to every host's TLS directory as crl.pem: processes read it within a second\n",
         crl.c_str());
  return absl::OkStatus();
}

absl::Status CertShow(const Cli& cli, const CertArgs& a) {
  std::string path = a.path;
  if (path.empty()) {
    const char* env = getenv("UKAI_TLS_DIR");
    if (env == nullptr || *env == '\0') return absl::InvalidArgumentError("give a PATH");
    path = env;
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/cert.pem";
  ASSIGN_OR_RETURN(std::string pem, security::ReadSmallFile(path));
  ASSIGN_OR_RETURN(CertInfo c, security::ReadCert(pem));
  if (cli.g.json) {
    PrintJson(CertJson(c));
  } else {
    printf("%s, serial %s, valid %s to %s UTC\n", c.who.ToString().c_str(), c.serial.c_str(),
           Day(c.not_before).c_str(), Day(c.not_after).c_str());
  }
  return absl::OkStatus();
}

void AddCaOption(CLI::App* cmd, CertArgs* a) {
  cmd->add_option("--ca", a->ca, "the CA's directory; default $UKAI_CA_DIR or /etc/ukai/ca");
}

}  // namespace

void AddCertCommands(CLI::App* app, Cli* cli) {
  auto a = std::make_shared<CertArgs>();
  auto* ca = app->add_subcommand("ca", "the cluster's certificate authority");
  ca->require_subcommand(1);
  auto* init = ca->add_subcommand(
      "init",
      "make the CA: ca.key (0600, keep it off the nodes) and ca.pem (every host trusts it)");
  AddCaOption(init, a.get());
  init->add_option("--name", a->name, "the cluster's name, in the CA's subject")
      ->capture_default_str();
  OnRun(init, cli, [cli, a] { return CaInit(*cli, *a); });

  auto* cert = app->add_subcommand("cert", "certificates of nodes, frontends, admins, backups");
  cert->require_subcommand(1);
  auto* issue = cert->add_subcommand(
      "issue",
      "issue a certificate into a TLS directory (ca.pem, cert.pem, key.pem 0600) for a "
      "process's --tls-dir. Issuing again into the same directory renews it: running "
      "processes pick up the new one within 10 s, without a restart");
  AddCaOption(issue, a.get());
  issue->add_option("--role", a->role, "node, frontend, admin or backup")->required();
  issue->add_option("--id", a->id, "node id (n1), hypervisor host name (hv7), operator (ops)")
      ->required();
  issue->add_option("--out", a->out, "TLS directory to write (created 0700)")->required();
  issue->add_option("--days", a->days, "validity in days")->capture_default_str();
  OnRun(issue, cli, [cli, a] { return CertIssue(*cli, *a); });

  auto* list = cert->add_subcommand("list", "every certificate the CA issued, and its state");
  AddCaOption(list, a.get());
  OnRun(list, cli, [cli, a] { return CertList(*cli, *a); });

  auto* revoke = cert->add_subcommand(
      "revoke",
      "revoke certificates and re-sign the CA's crl.pem; a process that has that crl.pem in "
      "its TLS directory refuses them on every call from then on");
  AddCaOption(revoke, a.get());
  revoke->add_option("serial", a->serials, "serials (cert list)");
  revoke->add_option("--role", a->role, "with --id: every valid certificate of that identity");
  revoke->add_option("--id", a->id, "see --role");
  OnRun(revoke, cli, [cli, a] { return CertRevoke(*cli, *a); });

  auto* show = cert->add_subcommand("show", "who a certificate names, its serial and validity");
  show->add_option("path", a->path, "cert.pem or a TLS directory; default $UKAI_TLS_DIR");
  OnRun(show, cli, [cli, a] { return CertShow(*cli, *a); });
}

}  // namespace ukai::ctl
