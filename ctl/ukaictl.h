// What ukaictl's commands share: the global options, the admin connection
// and the one-line failure (ctl/main.cc has the commands).
#ifndef UKAI_CTL_UKAICTL_H_
#define UKAI_CTL_UKAICTL_H_

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/include/ukai/cluster.h"
#include "ctl/transfer.h"
#include "ukai.grpc.pb.h"

namespace ukai::ctl {

using nlohmann::json;
using pb::Admin;

struct Globals {
  std::string admin;
  bool json = false;
  int timeout_s = 60;
  // For the commands that move data themselves (backup, restore, export,
  // import): libukai's connection.
  std::string zk, zk_root = "/ukai", site;
  int parallel = 8;
};

// Prints "ukaictl: MSG" on stderr and exits 1.
[[noreturn]] void Die(const std::string& msg);

// The first admin address (of a comma-separated list) that accepts a connection.
std::unique_ptr<Admin::Stub> Connect(const Globals& g);

// One admin call with the --timeout deadline; dies with the error.
template <typename Req, typename Resp, typename Fn>
Resp Call(const Globals& g, Fn method, const Req& req) {
  auto stub = Connect(g);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(g.timeout_s));
  Resp resp;
  grpc::Status s = ((*stub).*method)(&ctx, req, &resp);
  if (!s.ok()) Die(s.error_message());
  return resp;
}

// Pretty-printed, on stdout.
void PrintJson(const json& j);

// libukai's connection to the cluster, for the data movers (--zk or UKAI_ZK,
// --site or UKAI_SITE); dies if it cannot connect.
std::unique_ptr<client::Cluster> ConnectData(const Globals& g);
// The admin calls the data movers make, answering errors instead of exiting.
AdminOps MakeAdminOps(const Globals& g);
// One line (or --json) about a finished backup, restore, export or import.
void PrintTransfer(const Globals& g, const std::string& what, const absl::StatusOr<TransferResult>& r);

}  // namespace ukai::ctl

#endif  // UKAI_CTL_UKAICTL_H_
