#include "ctl/ukaictl.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/units.h"

namespace ukai::ctl {

void Die(const std::string& msg) {
  fprintf(stderr, "ukaictl: %s\n", msg.c_str());
  exit(1);
}

// The first admin address (of a comma-separated list) that accepts a connection.
std::unique_ptr<Admin::Stub> Connect(const Globals& g) {
  std::string list = g.admin;
  if (list.empty()) {
    const char* env = getenv("UKAI_ADMIN");
    if (env) list = env;
  }
  if (list.empty()) Die("no admin address: set UKAI_ADMIN=host:port or pass --admin");
  for (absl::string_view addr : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    auto ch = MakeChannel(std::string(addr));
    if (ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(3))) {
      return Admin::NewStub(ch);
    }
  }
  Die("cannot reach the admin service at " + list + " (is a ukai-node running?)");
}

void PrintJson(const json& j) { printf("%s\n", j.dump(2).c_str()); }

std::unique_ptr<client::Cluster> ConnectData(const Globals& g) {
  client::ClusterOptions o;
  o.zk = g.zk;
  if (o.zk.empty()) {
    const char* env = getenv("UKAI_ZK");
    o.zk = env ? env : "127.0.0.1:2181";
  }
  o.root = g.zk_root;
  o.site = g.site;
  if (o.site.empty()) {
    const char* env = getenv("UKAI_SITE");
    if (env) o.site = env;
  }
  o.host = absl::StrFormat("ukaictl-%d", getpid());
  auto c = client::Cluster::Connect(o);
  if (!c.ok()) Die(std::string(c.status().message()));
  return *std::move(c);
}

AdminOps MakeAdminOps(const Globals& g) {
  auto call = [g](auto method, const auto& req, auto* resp) {
    auto stub = Connect(g);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(g.timeout_s));
    return FromGrpc(((*stub).*method)(&ctx, req, resp));
  };
  AdminOps ops;
  ops.create_disk = [call](const pb::CreateDiskRequest& req) {
    pb::DiskInfo info;
    return call(&Admin::Stub::CreateDisk, req, &info);
  };
  ops.get_disk = [call](const std::string& name) -> absl::StatusOr<pb::DiskSpec> {
    pb::DiskRequest req;
    req.set_name(name);
    pb::DiskInfo info;
    absl::Status s = call(&Admin::Stub::GetDisk, req, &info);
    if (!s.ok()) return s;
    return info.spec();
  };
  ops.snapshot = [call](const std::string& disk, const std::string& snap, const std::string& from) {
    pb::SnapshotRequest req;
    req.set_disk(disk);
    req.set_snapshot(snap);
    req.set_restored_from(from);
    pb::CreateSnapshotResponse resp;
    return call(&Admin::Stub::CreateSnapshot, req, &resp);
  };
  return ops;
}

void PrintTransfer(const Globals& g, const std::string& what,
                   const absl::StatusOr<TransferResult>& r) {
  if (!r.ok()) Die(std::string(r.status().message()));
  const double rate = r->seconds > 0 ? double(r->bytes) / r->seconds : 0;
  if (g.json) {
    return PrintJson(json{{"done", what}, {"blocks", r->blocks}, {"bytes", r->bytes},
                          {"seconds", r->seconds}, {"bytes_per_second", static_cast<uint64_t>(rate)}});
  }
  printf("%s: %lu block(s), %s in %.1f s (%s/s)\n", what.c_str(),
         static_cast<unsigned long>(r->blocks), FormatSize(r->bytes).c_str(), r->seconds,
         FormatSize(static_cast<uint64_t>(rate)).c_str());
}

}  // namespace ukai::ctl
