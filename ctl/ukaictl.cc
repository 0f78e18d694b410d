#include "ctl/ukaictl.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "common/units.h"
#include "security/transport.h"

namespace ukai::ctl {
namespace {

std::string Env(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

constexpr char kAbout[] =
    "ukaictl: manage UKAI virtual disks.\n"
    "Talks to the admin service of any ukai-node (UKAI_ADMIN=host:port[,host:port] or "
    "--admin). Sizes take K/M/G/T/P suffixes (powers of 1024).";

constexpr char kExamples[] = R"(Examples:
  ukaictl node list
  ukaictl disk create vm1 --size 20G --replicas 2 --sites site-a,site-b
  ukaictl disk info vm1 --json
  ukaictl disk resize vm1 --size 40G      (online; mounts see the new size)
  ukaictl disk policy vm1 --on-replica-failure wait --hold 2m
  ukaictl disk delete vm1 [--force]      (refused while open for writing)
  ukaictl snap create vm1@before-upgrade   (constant time, while the VM runs)
  ukaictl clone gold@v3 vm9               (instant; writable at once)
  ukaictl backup vm1@mon vm1-mon.ukb --since sun   (incremental, no mount)
  ukaictl restore vm1-sun.ukb vm1r && ukaictl restore vm1-mon.ukb vm1r
  ukaictl relocate vm1 --sites site-b --bandwidth 200M   (prints a job id)
  ukaictl job wait job-1a2b3c4d          (progress bar; exit 0 when done)
  ukaictl ca init --ca /etc/ukai/ca       (once per cluster; keep ca.key safe)
  ukaictl cert issue --ca /etc/ukai/ca --role frontend --id hv7 --out /etc/ukai/tls

Exit status: 0 on success; 1 on failure, with one line "ukaictl: <reason>" on
stderr; 2 on a usage error. With --json, results are printed as JSON on stdout.)";

void AddGlobalOptions(CLI::App* app, Globals* g) {
  app->add_option("--admin", g->admin, "admin address(es), comma-separated; default $UKAI_ADMIN");
  app->add_flag("--json", g->json, "print machine-readable JSON");
  app->add_option("--timeout", g->timeout_s, "seconds to wait for the admin service")
      ->capture_default_str();
  app->add_option("--zk", g->zk,
                  "ZooKeeper, for backup/restore/export/import (they read and write the disks "
                  "themselves); default $UKAI_ZK or 127.0.0.1:2181");
  app->add_option("--zk-root", g->zk_root, "the cluster's root znode")->capture_default_str();
  app->add_option("--site", g->site,
                  "this host's site: data is read from replicas there first (default "
                  "$UKAI_SITE)");
  app->add_option("--parallel", g->parallel, "blocks in flight when moving data")
      ->capture_default_str();
  app->add_option("--tls-dir", g->tls_dir,
                  "TLS credentials (ca.pem, cert.pem, key.pem) of an admin or backup certificate "
                  "(`ukaictl cert issue`); default $UKAI_TLS_DIR");
  app->add_flag("--insecure-plaintext", g->insecure_plaintext,
                "no TLS, for a cluster started with --insecure-plaintext (benchmarks only); "
                "default on when UKAI_INSECURE_PLAINTEXT=1");
}

// The transport the options ask for.
absl::StatusOr<std::shared_ptr<const security::TransportSecurity>> Security(const Globals& g) {
  const std::string dir = g.tls_dir.empty() ? Env("UKAI_TLS_DIR") : g.tls_dir;
  const bool plaintext = g.insecure_plaintext || Env("UKAI_INSECURE_PLAINTEXT") == "1";
  return security::TransportSecurity::FromFlags("ukaictl", plaintext ? "" : dir, plaintext,
                                                SystemClock());
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdminStub>> ConnectAdmin(const Globals& g) {
  const std::string list = g.admin.empty() ? Env("UKAI_ADMIN") : g.admin;
  if (list.empty()) {
    return absl::InvalidArgumentError("no admin address: set UKAI_ADMIN=host:port or pass --admin");
  }
  ASSIGN_OR_RETURN(auto security, Security(g));
  ChannelFactory channels = security->Channels();
  for (absl::string_view addr : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    auto ch = channels(std::string(addr));
    if (ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(3))) {
      return std::unique_ptr<AdminStub>(Admin::NewStub(ch));
    }
  }
  return absl::UnavailableError("cannot reach the admin service at " + list +
                                (security->plaintext()
                                     ? " (is a ukai-node running, and with --insecure-plaintext?)"
                                     : " (is a ukai-node running? is the certificate in " +
                                           security->tls()->dir +
                                           " from this cluster's CA, unexpired and unrevoked?)"));
}

void OnRun(CLI::App* cmd, Cli* cli, std::function<absl::Status()> fn) {
  cmd->callback([cli, fn = std::move(fn)] { cli->result = fn(); });
}

void PrintJson(const json& j) { printf("%s\n", j.dump(2).c_str()); }

absl::StatusOr<uint64_t> SizeArg(const std::string& text) { return ParseSize(text); }

std::vector<std::string> ListArg(const std::string& text) {
  std::vector<std::string> out = absl::StrSplit(text, ',', absl::SkipEmpty());
  return out;
}

absl::StatusOr<std::unique_ptr<client::Cluster>> ConnectData(const Globals& g) {
  client::ClusterOptions o;
  o.zk = g.zk.empty() ? Env("UKAI_ZK") : g.zk;
  if (o.zk.empty()) o.zk = "127.0.0.1:2181";
  o.root = g.zk_root;
  o.site = g.site.empty() ? Env("UKAI_SITE") : g.site;
  o.host = absl::StrFormat("ukaictl-%d", getpid());
  o.tls_dir = g.tls_dir.empty() ? Env("UKAI_TLS_DIR") : g.tls_dir;
  o.insecure_plaintext = g.insecure_plaintext || Env("UKAI_INSECURE_PLAINTEXT") == "1";
  if (o.insecure_plaintext) o.tls_dir.clear();
  if (!Env("UKAI_RUN_DIR").empty()) o.run_dir = Env("UKAI_RUN_DIR");
  o.program = "ukaictl";
  return client::Cluster::Connect(o);
}

AdminOps MakeAdminOps(const Cli& cli) {
  AdminOps ops;
  ops.create_disk = [&cli](const pb::CreateDiskRequest& req) {
    return Call<pb::CreateDiskRequest, pb::DiskInfo>(cli, &AdminStub::CreateDisk, req).status();
  };
  ops.get_disk = [&cli](const std::string& name) -> absl::StatusOr<pb::DiskSpec> {
    pb::DiskRequest req;
    req.set_name(name);
    ASSIGN_OR_RETURN(auto info,
                     (Call<pb::DiskRequest, pb::DiskInfo>(cli, &AdminStub::GetDisk, req)));
    return info.spec();
  };
  ops.snapshot = [&cli](const std::string& disk, const std::string& snap, const std::string& from) {
    pb::SnapshotRequest req;
    req.set_disk(disk);
    req.set_snapshot(snap);
    req.set_restored_from(from);
    return Call<pb::SnapshotRequest, pb::CreateSnapshotResponse>(cli, &AdminStub::CreateSnapshot,
                                                                 req)
        .status();
  };
  return ops;
}

absl::Status PrintTransfer(const Globals& g, const std::string& what,
                           const absl::StatusOr<TransferResult>& r) {
  if (!r.ok()) return r.status();
  const double rate = r->seconds > 0 ? double(r->bytes) / r->seconds : 0;
  if (g.json) {
    PrintJson(json{{"done", what},
                   {"blocks", r->blocks},
                   {"bytes", r->bytes},
                   {"seconds", r->seconds},
                   {"bytes_per_second", static_cast<uint64_t>(rate)}});
    return absl::OkStatus();
  }
  printf("%s: %lu block(s), %s in %.1f s (%s/s)\n", what.c_str(),
         static_cast<unsigned long>(r->blocks), FormatSize(r->bytes).c_str(), r->seconds,
         FormatSize(static_cast<uint64_t>(rate)).c_str());
  return absl::OkStatus();
}

int RunUkaictl(int argc, const char* const* argv, Cli* cli) {
  if (!cli->connect) cli->connect = ConnectAdmin;
  RouteGrpcLogs(LogLevel::kDebug);  // a command's failure is its one line, not gRPC's
  CLI::App app{kAbout};
  app.require_subcommand(1);
  app.fallthrough();  // --json, --admin and --timeout also after the subcommand
  app.footer(kExamples);
  AddGlobalOptions(&app, &cli->g);
  AddNodeCommands(&app, cli);
  AddDiskCommands(&app, cli);
  AddJobCommands(&app, cli);
  AddSnapCommands(&app, cli);
  AddTransferCommands(&app, cli);
  AddCertCommands(&app, cli);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    fprintf(stderr, "ukaictl: %s (see ukaictl --help)\n", e.what());
    return 2;
  }
  if (cli->result.ok()) return 0;
  fprintf(stderr, "ukaictl: %s\n", std::string(cli->result.message()).c_str());
  return 1;
}

}  // namespace ukai::ctl
