// The snapshot and clone half of AdminService: metadata steps in the catalog
// (meta/snapshots.cc), then what the nodes must do about them (fence after a
// snapshot, collect after a delete).
#include <algorithm>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"
#include "common/units.h"
#include "meta/generations.h"
#include "node/admin_service.h"

namespace ukai::node {
namespace {

// Runs fn(node) for every node at once; returns the nodes it failed on.
std::vector<std::string> OnEach(const std::set<std::string>& nodes,
                                const std::function<absl::Status(const std::string&)>& fn) {
  std::vector<absl::Status> results(nodes.size());
  std::vector<std::thread> threads;
  size_t i = 0;
  for (const auto& n : nodes) {
    threads.emplace_back([&, n, i] { results[i] = fn(n); });
    ++i;
  }
  for (auto& t : threads) t.join();
  std::vector<std::string> failed;
  i = 0;
  for (const auto& n : nodes) {
    if (!results[i].ok()) {
      LOG_WARN("%s: %s", n, results[i].ToString());
      failed.push_back(n);
    }
    ++i;
  }
  return failed;
}

}  // namespace

absl::StatusOr<std::vector<pb::SnapshotInfo>> AdminService::SnapshotInfos(const pb::DiskSpec& spec) {
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
    for (const auto& n : OnEach(nodes, [&](const std::string& n) {
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
    (void)OnEach(nodes, [&](const std::string& n) { return nodes_->Collect(n, spec->id()).status(); });
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
  auto spec = DoRollback(req->disk(), req->snapshot(), req->force());
  if (!spec.ok()) return ToGrpc(spec.status());
  LOG_INFO("disk %s rolled back to snapshot %s", req->disk(), req->snapshot());
  return ToGrpc(FillDiskInfo(*spec, resp));
}

// Rollback, chunk by chunk: each block whose current state differs from the
// snapshot's gets, at the rollback's generation W, a copy of the snapshot's
// object made on its replicas' nodes (or no object: zeros; or, on a clone,
// the parent again), then one compare-and-set per chunk switches the
// pointers, keeping what the snapshots read. The writer epoch is taken
// first, so a writer still running (with --force) is fenced. A block at W is
// done: a rollback that died is finished by running it again.
absl::StatusOr<pb::DiskSpec> AdminService::DoRollback(const std::string& disk,
                                                      const std::string& snap, bool force) {
  if (nodes_ == nullptr) return absl::UnimplementedError("this admin service cannot reach the nodes");
  RETURN_IF_ERROR(ValidateSnapshotName(snap));
  ASSIGN_OR_RETURN(uint64_t id, catalog_->LookupName(disk));
  ASSIGN_OR_RETURN(auto open, catalog_->OpenBy(id));
  if (!open.empty() && !force) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "disk '%s' is open for writing on %s (site %s): stop the VM first, or use --force (its "
        "writes then fail with EIO)", disk, open[0].host(), open[0].site()));
  }
  ASSIGN_OR_RETURN(auto spec, catalog_->BeginRollback(id, snap));
  const pb::Snapshot* s = meta::FindSnapshot(spec, snap);
  const uint64_t gen = spec.generation(), at = s->generation();
  const bool clone = spec.has_parent();
  ASSIGN_OR_RETURN(uint64_t epoch, catalog_->TakeWriterEpoch(id, "rollback", ""));
  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(id));
  const uint64_t nblocks = (spec.size() + spec.block_size() - 1) / spec.block_size();
  for (const auto& [c, chunk] : chunks) {
    struct Change {
      uint64_t block;
      meta::BlockView target;
      pb::BlockPtr was;
      std::vector<std::string> failed;
    };
    std::vector<Change> changes;
    for (uint64_t b = c * meta::kChunkBlocks; b < std::min(nblocks, (c + 1) * meta::kChunkBlocks); ++b) {
      const pb::BlockPtr& ptr = chunk.blocks(static_cast<int>(b % meta::kChunkBlocks));
      if (ptr.generation() >= gen) continue;  // done by an earlier run
      const meta::BlockView now = meta::ViewOf(ptr, meta::kLiveView, clone);
      const meta::BlockView then = meta::ViewOf(ptr, at, clone);
      if (now.kind == then.kind && now.generation == then.generation) continue;  // unchanged since
      changes.push_back({b, then, ptr, {}});
    }
    if (changes.empty()) continue;
    ASSIGN_OR_RETURN(auto cur, catalog_->GetSpec(id));
    // The copies, every replica of every block at once (a thread per call,
    // in groups of 16).
    struct Task {
      size_t change;
      std::string node;
      absl::Status status;
    };
    std::vector<Task> tasks;
    for (size_t i = 0; i < changes.size(); ++i) {
      if (changes[i].target.kind == meta::BlockView::kParent) continue;
      for (const auto& r : changes[i].was.replicas()) {
        if (r.state() == pb::CLEAN) tasks.push_back({i, r.node(), absl::OkStatus()});
      }
    }
    for (size_t first = 0; first < tasks.size(); first += 16) {
      std::vector<std::thread> threads;
      for (size_t k = first; k < std::min(tasks.size(), first + 16); ++k) {
        threads.emplace_back([&, k] {
          const Change& ch = changes[tasks[k].change];
          pb::CopyUpRequest cu;
          cu.mutable_hdr()->set_disk_id(id);
          cu.mutable_hdr()->set_layout_version(cur.spec.layout_version());
          cu.mutable_hdr()->set_epoch(epoch);
          cu.set_block(ch.block);
          cu.set_generation(gen);
          cu.set_from_generation(ch.target.generation);
          cu.set_empty(ch.target.kind == meta::BlockView::kZeros);
          tasks[k].status = nodes_->CopyUp(tasks[k].node, cu);
        });
      }
      for (auto& t : threads) t.join();
    }
    for (const auto& t : tasks) {
      if (t.status.ok()) continue;
      LOG_WARN("rollback of disk %s block %d on %s: %s", disk, changes[t.change].block, t.node,
               t.status.ToString());
      changes[t.change].failed.push_back(t.node);
    }
    for (const auto& ch : changes) {
      size_t clean = 0;
      for (const auto& r : ch.was.replicas()) clean += r.state() == pb::CLEAN;
      if (ch.target.kind != meta::BlockView::kParent && ch.failed.size() >= clean) {
        return absl::UnavailableError(absl::StrFormat(
            "rollback of disk '%s': block %d could not be copied on any replica; run it again "
            "once the nodes are back (the disk stays marked)", disk, ch.block));
      }
    }
    RETURN_IF_ERROR(catalog_->UpdateChunkWithSpec(
        id, c, [&](const pb::DiskSpec& now, pb::BlockChunk* ch) -> absl::StatusOr<bool> {
          if (now.generation() != gen || now.rolling_back() != snap) {
            return absl::AbortedError("the disk changed during the rollback; run it again");
          }
          for (const auto& change : changes) {
            pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(change.block % meta::kChunkBlocks));
            if (ptr->generation() != change.was.generation() ||
                ptr->inherited() != change.was.inherited()) {
              return absl::AbortedError(absl::StrFormat(
                  "block %d changed during the rollback; run it again", change.block));
            }
            meta::Advance(ptr, gen, now);
            ptr->set_inherited(change.target.kind == meta::BlockView::kParent);
            for (auto& r : *ptr->mutable_replicas()) {
              if (r.state() == pb::SYNCING ||
                  std::find(change.failed.begin(), change.failed.end(), r.node()) != change.failed.end()) {
                r.set_state(pb::STALE);
              }
            }
          }
          return true;
        }).status());
  }
  ASSIGN_OR_RETURN(auto done, catalog_->EndRollback(id));
  // Every node learns the new layout (and with it the new epoch) now: the
  // old writer's next write is turned away everywhere.
  std::set<std::string> nodes;
  if (auto live = catalog_->LiveNodes(); live.ok()) nodes = *live;
  (void)OnEach(nodes, [&](const std::string& n) { return nodes_->Fence(n, id, done.layout_version()); });
  return done;
}

}  // namespace ukai::node
