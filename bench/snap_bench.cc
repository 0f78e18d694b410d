// snap_bench: times the Admin RPCs of snapshots and clones as a cloud
// controller sees them (one gRPC call each, connection already open): N
// snapshots of a disk, then N clones of its last snapshot; then removes what
// it made. Prints one JSON object of latencies in milliseconds.
//
//   snap_bench --admin HOST:PORT --disk NAME [--count 20]
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/channel.h"
#include "common/clock.h"
#include "security/transport.h"
#include "ukai.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string Stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  return absl::StrFormat(
      "{\"n\": %d, \"min\": %.2f, \"median\": %.2f, \"p90\": %.2f, \"max\": %.2f}", v.size(),
      v.front(), at(0.5), at(0.9), v.back());
}

void Check(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return;
  fprintf(stderr, "snap_bench: %s: %s\n", what.c_str(), s.error_message().c_str());
  exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  std::string admin, disk, tls_dir;
  int count = 20;
  CLI::App app{"time snapshot and clone creation through the Admin API"};
  app.add_option("--admin", admin, "admin address host:port")->required();
  app.add_option("--disk", disk, "disk to snapshot")->required();
  app.add_option("--count", count, "snapshots and clones to make")->capture_default_str();
  app.add_option("--tls-dir", tls_dir, "an admin's TLS credentials; default $UKAI_TLS_DIR");
  CLI11_PARSE(app, argc, argv);
  if (count < 1) count = 1;
  if (tls_dir.empty() && getenv("UKAI_TLS_DIR") != nullptr) tls_dir = getenv("UKAI_TLS_DIR");
  auto security = ukai::security::TransportSecurity::FromFlags(
      "snap_bench", tls_dir, tls_dir.empty(), ukai::SystemClock());
  if (!security.ok()) {
    fprintf(stderr, "snap_bench: %s\n", std::string(security.status().message()).c_str());
    return 1;
  }
  auto stub = ukai::pb::Admin::NewStub((*security)->Channels()(admin));
  auto call = [&](auto method, const auto& req, auto* resp, const std::string& what) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    const auto t0 = Clock::now();
    Check(((*stub).*method)(&ctx, req, resp), what);
    return Ms(Clock::now() - t0);
  };
  {  // the connection is up before anything is timed
    ukai::pb::DiskRequest req;
    req.set_name(disk);
    ukai::pb::DiskInfo info;
    call(&ukai::pb::Admin::Stub::GetDisk, req, &info, "disk info");
  }
  std::vector<double> snaps, clones;
  std::vector<std::string> snap_names, clone_names;
  for (int i = 0; i < count; ++i) {
    ukai::pb::SnapshotRequest req;
    req.set_disk(disk);
    req.set_snapshot(absl::StrFormat("bench%d", i));
    ukai::pb::CreateSnapshotResponse resp;
    snaps.push_back(call(&ukai::pb::Admin::Stub::CreateSnapshot, req, &resp, "snapshot"));
    snap_names.push_back(req.snapshot());
  }
  for (int i = 0; i < count; ++i) {
    ukai::pb::CloneRequest req;
    req.set_parent(disk);
    req.set_snapshot(snap_names.back());
    req.set_name(absl::StrFormat("%s-clone%d", disk, i));
    ukai::pb::DiskInfo info;
    clones.push_back(call(&ukai::pb::Admin::Stub::Clone, req, &info, "clone"));
    clone_names.push_back(req.name());
  }
  for (const auto& c : clone_names) {
    ukai::pb::DiskRequest req;
    req.set_name(c);
    ukai::pb::DiskInfo info;
    call(&ukai::pb::Admin::Stub::DeleteDisk, req, &info, "deleting a clone");
  }
  std::vector<double> deletes;
  for (const auto& s : snap_names) {
    ukai::pb::SnapshotRequest req;
    req.set_disk(disk);
    req.set_snapshot(s);
    ukai::pb::SnapshotInfo info;
    deletes.push_back(
        call(&ukai::pb::Admin::Stub::DeleteSnapshot, req, &info, "deleting a snapshot"));
  }
  printf("{\"snapshot_ms\": %s, \"clone_ms\": %s, \"snapshot_delete_ms\": %s}\n",
         Stats(snaps).c_str(), Stats(clones).c_str(), Stats(deletes).c_str());
  return 0;
}
