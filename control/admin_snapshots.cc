// The snapshot and clone half of AdminService: metadata steps in the catalog
// (meta/snapshots.cc), then what the nodes must do about them (fence after a
// snapshot, collect after a delete).
#include <algorithm>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"
#include "common/units.h"
#include "control/admin_service.h"
#include "control/on_each_node.h"
#include "control/rollback.h"
#include "meta/generations.h"

namespace ukai::control {

absl::StatusOr<std::vector<pb::SnapshotInfo>> AdminService::SnapshotInfos(
    const pb::DiskSpec& spec) {
  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(spec.id()));
  std::vector<pb::SnapshotInfo> out;
  for (const auto& s : spec.snapshots()) {
    pb::SnapshotInfo info;
    *info.mutable_snapshot() = s;
    uint64_t blocks = 0;
    for (const auto& [c, chunk] : chunks) {
      for (const auto& ptr : chunk.blocks()) blocks += meta::ExclusiveTo(ptr, spec, s.generation());
    }
    info.set_exclusive_bytes(blocks * spec.block_size());
    for (uint64_t id : s.clones()) {
      auto c = catalog_->GetSpec(id);
      info.add_clones(c.ok() ? c->spec.name() : absl::StrFormat("(disk id %d)", id));
    }
    out.push_back(std::move(info));
  }
  return out;
}

grpc::Status AdminService::CreateSnapshot(grpc::ServerContext*, const pb::SnapshotRequest* req,
                                          pb::CreateSnapshotResponse* resp) {
  auto spec = catalog_->CreateSnapshot(req->disk(), req->snapshot(), req->restored_from());
  if (!spec.ok()) return ToGrpc(spec.status());
  // Every live node turns away writes under the layout before the snapshot
  // (and waits for those running): a write sent after this returns lands in
  // a new object. Nodes that are down read the new layout before serving.
  std::set<std::string> nodes;
  if (auto live = catalog_->LiveNodes(); live.ok()) nodes = *live;
  if (nodes_ != nullptr) {
    for (const auto& n : OnEachNode(executor_, nodes, [&](const std::string& n) {
           return nodes_->Fence(n, spec->id(), spec->layout_version());
         })) {
      resp->add_unfenced(n);
    }
  }
  const pb::Snapshot* s = meta::FindSnapshot(*spec, req->snapshot());
  *resp->mutable_snapshot()->mutable_snapshot() = *s;
  *resp->mutable_disk() = *spec;
  LOG_INFO("disk %s: snapshot %s at generation %d%s", req->disk(), req->snapshot(), s->generation(),
           resp->unfenced().empty() ? "" : " (some nodes not fenced)");
  return grpc::Status::OK;
}

grpc::Status AdminService::ListSnapshots(grpc::ServerContext*, const pb::DiskRequest* req,
                                         pb::ListSnapshotsResponse* resp) {
  auto spec = catalog_->GetByName(req->name());
  if (!spec.ok()) return ToGrpc(spec.status());
  auto infos = SnapshotInfos(*spec);
  if (!infos.ok()) return ToGrpc(infos.status());
  *resp->mutable_disk() = *spec;
  for (auto& i : *infos) *resp->add_snapshots() = std::move(i);
  return grpc::Status::OK;
}

grpc::Status AdminService::DeleteSnapshot(grpc::ServerContext*, const pb::SnapshotRequest* req,
                                          pb::SnapshotInfo* resp) {
  auto before = catalog_->GetByName(req->disk());
  if (!before.ok()) return ToGrpc(before.status());
  const pb::Snapshot* s = meta::FindSnapshot(*before, req->snapshot());
  if (s != nullptr) *resp->mutable_snapshot() = *s;
  auto spec = catalog_->DeleteSnapshot(req->disk(), req->snapshot());
  if (!spec.ok()) return ToGrpc(spec.status());
  // The space: every node that holds replicas drops what no one names now.
  // One that is down or fails here keeps the objects until its periodic
  // collection (node/collector.h, ukai-node --collect-every).
  std::set<std::string> nodes;
  if (auto live = catalog_->LiveNodes(); live.ok()) nodes = *live;
  if (nodes_ != nullptr) {
    (void)OnEachNode(executor_, nodes,
                     [&](const std::string& n) { return nodes_->Collect(n, spec->id()).status(); });
  }
  LOG_INFO("disk %s: snapshot %s deleted", req->disk(), req->snapshot());
  return grpc::Status::OK;
}

grpc::Status AdminService::Clone(grpc::ServerContext*, const pb::CloneRequest* req,
                                 pb::DiskInfo* resp) {
  auto spec = catalog_->CloneDisk(req->parent(), req->snapshot(), req->name(), req->placement());
  if (!spec.ok()) return ToGrpc(spec.status());
  LOG_INFO("disk %s cloned from %s@%s", spec->name(), req->parent(), req->snapshot());
  // Just the spec, as for a created disk: a new clone holds nothing yet, and
  // asking every node for its usage would make the call as slow as the
  // slowest node's store scan.
  *resp->mutable_spec() = *spec;
  return grpc::Status::OK;
}

grpc::Status AdminService::Flatten(grpc::ServerContext*, const pb::RepairRequest* req,
                                   pb::JobRecord* resp) {
  auto job = catalog_->StartFlatten(req->name(), req->bandwidth_bps());
  if (!job.ok()) return ToGrpc(job.status());
  LOG_INFO("job %s: flatten of disk %s started", job->id(), req->name());
  *resp = *job;
  return grpc::Status::OK;
}

grpc::Status AdminService::Rollback(grpc::ServerContext*, const pb::SnapshotRequest* req,
                                    pb::DiskInfo* resp) {
  auto spec = control::Rollback(catalog_, nodes_, executor_)
                  .Run(req->disk(), req->snapshot(), req->force());
  if (!spec.ok()) return ToGrpc(spec.status());
  LOG_INFO("disk %s rolled back to snapshot %s", req->disk(), req->snapshot());
  return ToGrpc(FillDiskInfo(*spec, resp));
}

}  // namespace ukai::control
