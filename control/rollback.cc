#include "control/rollback.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"
#include "common/units.h"
#include "control/on_each_node.h"
#include "control/repair_plan.h"
#include "meta/layout.h"

namespace ukai::control {
namespace {

constexpr size_t kCopiesAtOnce = 16;

}  // namespace

absl::StatusOr<pb::DiskSpec> Rollback::Run(const std::string& disk, const std::string& snap,
                                           bool force) {
  if (nodes_ == nullptr) {
    return absl::UnimplementedError("this admin service cannot reach the nodes");
  }
  RETURN_IF_ERROR(ValidateSnapshotName(snap));
  name_ = disk;
  ASSIGN_OR_RETURN(id_, catalog_->LookupName(disk));
  RETURN_IF_ERROR(Begin(snap, force));
  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(id_));
  for (const auto& [c, chunk] : chunks) {
    std::vector<Change> changes = ChangesOf(c, chunk);
    if (changes.empty()) continue;
    RETURN_IF_ERROR(CopyUps(&changes));
    RETURN_IF_ERROR(CheckCopied(changes));
    RETURN_IF_ERROR(SwitchChunk(c, changes));
  }
  return End();
}

absl::Status Rollback::Begin(const std::string& snap, bool force) {
  ASSIGN_OR_RETURN(auto open, catalog_->OpenBy(id_));
  if (!open.empty() && !force) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "disk '%s' is open for writing on %s (site %s): stop the VM first, or use --force (its "
        "writes then fail with EIO)",
        name_, open[0].host(), open[0].site()));
  }
  ASSIGN_OR_RETURN(spec_, catalog_->BeginRollback(id_, snap));
  snap_ = snap;
  gen_ = spec_.generation();
  at_ = meta::FindSnapshot(spec_, snap)->generation();
  clone_ = spec_.has_parent();
  ASSIGN_OR_RETURN(epoch_, catalog_->TakeWriterEpoch(id_, "rollback", ""));
  return absl::OkStatus();
}

std::vector<Rollback::Change> Rollback::ChangesOf(uint64_t c, const pb::BlockChunk& chunk) const {
  const uint64_t nblocks = BlockCount(spec_);
  std::vector<Change> changes;
  const uint64_t end = std::min(nblocks, (c + 1) * meta::kChunkBlocks);
  for (uint64_t b = c * meta::kChunkBlocks; b < end; ++b) {
    const pb::BlockPtr& ptr = chunk.blocks(static_cast<int>(b % meta::kChunkBlocks));
    if (ptr.generation() >= gen_) continue;  // done by an earlier run
    const meta::BlockView now = meta::ViewOf(ptr, meta::kLiveView, clone_);
    const meta::BlockView then = meta::ViewOf(ptr, at_, clone_);
    if (now.kind == then.kind && now.generation == then.generation) continue;  // unchanged since
    changes.push_back({b, then, ptr, {}});
  }
  return changes;
}

absl::Status Rollback::CopyUps(std::vector<Change>* changes) {
  ASSIGN_OR_RETURN(auto cur, catalog_->GetSpec(id_));
  struct Task {
    size_t change;
    std::string node;
    absl::Status status;
  };
  std::vector<Task> tasks;
  for (size_t i = 0; i < changes->size(); ++i) {
    const Change& ch = (*changes)[i];
    if (ch.target.kind == meta::BlockView::kParent) continue;
    for (const auto& r : ch.was.replicas()) {
      if (r.state() == pb::CLEAN) tasks.push_back({i, r.node(), absl::OkStatus()});
    }
  }
  ParallelFor(executor_, tasks.size(), kCopiesAtOnce, [&](size_t k) {
    const Change& ch = (*changes)[tasks[k].change];
    pb::CopyUpRequest cu;
    *cu.mutable_hdr() = JobHeader(id_, cur.spec.layout_version());
    cu.mutable_hdr()->set_epoch(epoch_);
    cu.set_block(ch.block);
    cu.set_generation(gen_);
    cu.set_from_generation(ch.target.generation);
    cu.set_empty(ch.target.kind == meta::BlockView::kZeros);
    tasks[k].status = nodes_->CopyUp(tasks[k].node, cu);
  });
  for (const auto& t : tasks) {
    if (t.status.ok()) continue;
    LOG_WARN("rollback of disk %s block %d on %s: %s", name_, (*changes)[t.change].block, t.node,
             t.status.ToString());
    (*changes)[t.change].failed.push_back(t.node);
  }
  return absl::OkStatus();
}

absl::Status Rollback::CheckCopied(const std::vector<Change>& changes) const {
  for (const auto& ch : changes) {
    size_t clean = 0;
    for (const auto& r : ch.was.replicas()) clean += r.state() == pb::CLEAN;
    if (ch.target.kind != meta::BlockView::kParent && ch.failed.size() >= clean) {
      return absl::UnavailableError(absl::StrFormat(
          "rollback of disk '%s': block %d could not be copied on any replica; run it again "
          "once the nodes are back (the disk stays marked)",
          name_, ch.block));
    }
  }
  return absl::OkStatus();
}

absl::Status Rollback::SwitchChunk(uint64_t c, const std::vector<Change>& changes) {
  auto change = [&](const pb::DiskSpec& now, pb::BlockChunk* ch) -> absl::StatusOr<bool> {
    if (now.generation() != gen_ || now.rolling_back() != snap_) {
      return absl::AbortedError("the disk changed during the rollback; run it again");
    }
    for (const auto& change : changes) {
      pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(change.block % meta::kChunkBlocks));
      if (ptr->generation() != change.was.generation() ||
          ptr->inherited() != change.was.inherited()) {
        return absl::AbortedError(
            absl::StrFormat("block %d changed during the rollback; run it again", change.block));
      }
      meta::Advance(ptr, gen_, now);
      ptr->set_inherited(change.target.kind == meta::BlockView::kParent);
      for (auto& r : *ptr->mutable_replicas()) {
        if (r.state() == pb::SYNCING || Contains(change.failed, r.node())) {
          r.set_state(pb::STALE);
        }
      }
    }
    return true;
  };
  return catalog_->UpdateChunkWithSpec(id_, c, change).status();
}

absl::StatusOr<pb::DiskSpec> Rollback::End() {
  ASSIGN_OR_RETURN(auto done, catalog_->EndRollback(id_));
  // Every node learns the new layout (and with it the new epoch) now: the
  // old writer's next write is turned away everywhere.
  std::set<std::string> nodes;
  if (auto live = catalog_->LiveNodes(); live.ok()) nodes = *live;
  (void)OnEachNode(executor_, nodes, [&](const std::string& n) {
    return nodes_->Fence(n, id_, done.layout_version());
  });
  return done;
}

}  // namespace ukai::control
