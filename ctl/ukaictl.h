// What ukaictl's command groups share: the global options, the admin
// connection, a command's result, and the helpers every group uses. Each
// command returns an absl::Status; main (ctl/main.cc) prints the one line
// "ukaictl: <reason>" and exits 1 for a failure, 2 for a usage error.
//
// The command groups (each adds its subcommands to the app):
//   ctl/cmd_node.cc      node list|drain|remove
//   ctl/cmd_disk.cc      disk create|list|info|resize|policy|delete|repair
//   ctl/cmd_jobs.cc      relocate, scrub, flatten, job list|wait|info|cancel
//   ctl/cmd_snap.cc      snap create|list|delete|rollback, clone
//   ctl/cmd_transfer.cc  backup, restore, export, import (ctl/transfer.h)
//   ctl/cmd_cert.cc      ca init, cert issue|list|revoke|show (security/pki.h)
#ifndef UKAI_CTL_UKAICTL_H_
#define UKAI_CTL_UKAICTL_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/include/ukai/cluster.h"
#include "common/grpc_status.h"
#include "ctl/transfer.h"
#include "ukai.grpc.pb.h"

namespace CLI {
class App;
}

namespace ukai::ctl {

using nlohmann::json;
using pb::Admin;
using AdminStub = pb::Admin::StubInterface;

struct Globals {
  std::string admin;
  bool json = false;
  int timeout_s = 60;
  // For the commands that move data themselves (backup, restore, export,
  // import): libukai's connection.
  std::string zk, zk_root = "/ukai", site;
  int parallel = 8;
  // Credentials for every connection (--tls-dir or $UKAI_TLS_DIR), or none
  // (--insecure-plaintext or UKAI_INSECURE_PLAINTEXT=1; benchmarks only).
  std::string tls_dir;
  bool insecure_plaintext = false;
};

// One run of ukaictl: its options, how it reaches the admin service, and
// what the command that ran returned.
struct Cli {
  Globals g;
  // The admin connection; by default the first address of --admin (or
  // $UKAI_ADMIN) that accepts one. Tests put an in-process one here.
  std::function<absl::StatusOr<std::unique_ptr<AdminStub>>(const Globals&)> connect;
  absl::Status result;

  // The admin stub, connected on first use and kept (a job wait polls).
  absl::StatusOr<AdminStub*> Stub() const {
    if (!stub_) {
      auto s = connect(g);
      if (!s.ok()) return s.status();
      stub_ = std::move(*s);
    }
    return stub_.get();
  }
  // After a call found the admin gone: the next one connects again.
  void DropStub() const { stub_.reset(); }

 private:
  mutable std::unique_ptr<AdminStub> stub_;
};

// The first admin address (of a comma-separated list) that accepts a
// connection; UNAVAILABLE naming them if none does.
absl::StatusOr<std::unique_ptr<AdminStub>> ConnectAdmin(const Globals& g);

// One admin call with the --timeout deadline.
template <typename Req, typename Resp, typename Fn>
absl::StatusOr<Resp> Call(const Cli& cli, Fn method, const Req& req) {
  auto stub = cli.Stub();
  if (!stub.ok()) return stub.status();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(cli.g.timeout_s));
  Resp resp;
  grpc::Status s = ((**stub).*method)(&ctx, req, &resp);
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) cli.DropStub();
  if (!s.ok()) return FromGrpc(s);
  return resp;
}

// Makes `cmd` run `fn` when it is the command given, recording its result.
void OnRun(CLI::App* cmd, Cli* cli, std::function<absl::Status()> fn);

// Pretty-printed, on stdout.
void PrintJson(const json& j);

// A size argument with K/M/G/T/P suffixes; INVALID_ARGUMENT saying why not.
absl::StatusOr<uint64_t> SizeArg(const std::string& text);
// "a,b,,c" -> {a, b, c}.
std::vector<std::string> ListArg(const std::string& text);

// libukai's connection to the cluster, for the data movers (--zk or UKAI_ZK,
// --site or UKAI_SITE).
absl::StatusOr<std::unique_ptr<client::Cluster>> ConnectData(const Globals& g);
// The admin calls the data movers make.
AdminOps MakeAdminOps(const Cli& cli);
// One line (or --json) about a finished backup, restore, export or import.
absl::Status PrintTransfer(const Globals& g, const std::string& what,
                           const absl::StatusOr<TransferResult>& r);

// The command groups (see the top of this file).
void AddNodeCommands(CLI::App* app, Cli* cli);
void AddDiskCommands(CLI::App* app, Cli* cli);
void AddJobCommands(CLI::App* app, Cli* cli);
void AddSnapCommands(CLI::App* app, Cli* cli);
void AddTransferCommands(CLI::App* app, Cli* cli);
void AddCertCommands(CLI::App* app, Cli* cli);

// Parses `argv` and runs the command it names: the exit status (0, 1 with
// "ukaictl: <reason>" on stderr, 2 for a usage error).
int RunUkaictl(int argc, const char* const* argv, Cli* cli);

}  // namespace ukai::ctl

#endif  // UKAI_CTL_UKAICTL_H_
