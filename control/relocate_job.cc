#include "control/relocate_job.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"
#include "control/relocation_batch.h"
#include "control/repair_plan.h"
#include "meta/generations.h"
#include "meta/layout.h"

namespace ukai::control {

using meta::kChunkBlocks;
using meta::OwnObjects;

absl::Status RelocateJob::Run() {
  const std::string id = job_->id();
  meta::Catalog* catalog = ctx_->catalog();
  ASSIGN_OR_RETURN(
      *job_, catalog->UpdateJob(id, [&](pb::JobRecord* r) { r->set_runner(ctx_->env().self); }));
  LOG_INFO("job %s: %s disk %s (%d) from block %d", id,
           job_->kind() == pb::JobRecord::REPAIR ? "repairing" : "relocating", job_->disk_name(),
           job_->disk_id(), job_->next_block());
  RETURN_IF_ERROR(ctx_->CrashPoint("start"));
  RETURN_IF_ERROR(FinishOwed());

  ASSIGN_OR_RETURN(auto chunks, catalog->ReadChunks(job_->disk_id()));
  ASSIGN_OR_RETURN(auto spec, catalog->GetSpec(job_->disk_id()));
  const uint64_t nblocks = BlockCount(spec.spec);
  if (job_->blocks_done() == 0 && job_->bytes_total() == 0) {
    RETURN_IF_ERROR(EstimateTotals(chunks, spec.spec));
  }
  // An unwritten region moves by pointer updates alone, about as costly for
  // 1024 blocks as for 32: after a batch with nothing to copy the next one is
  // four times bigger (up to a chunk), and back to small once data shows up.
  const uint64_t small = ctx_->options().batch_blocks;
  uint64_t batch = small;
  for (const auto& [c, chunk] : chunks) {
    // Blocks past the disk's end when the job started hold no data; they
    // stay where they are (docs/ARCHITECTURE.md, known limits).
    // A repair walks whole chunks: pointers past the end hold no data, but a
    // grow would make them writable, and they must not keep a drained node.
    const uint64_t chunk_end = job_->kind() == pb::JobRecord::REPAIR
                                   ? (c + 1) * kChunkBlocks
                                   : std::min<uint64_t>((c + 1) * kChunkBlocks, nblocks);
    for (uint64_t first = std::max(c * kChunkBlocks, job_->next_block()); first < chunk_end;) {
      const uint64_t n = std::min<uint64_t>(batch, chunk_end - first);
      bool copied = false;
      absl::Status s = MoveRetrying(c, first, n, &copied);
      if (ctx_->cancel_seen() && absl::IsCancelled(s)) return Cancel(c, first, n);
      RETURN_IF_ERROR(s);
      first += n;
      batch =
          copied ? small : std::min<uint64_t>(batch * 4, std::max<uint64_t>(kChunkBlocks, small));
    }
  }
  ASSIGN_OR_RETURN(auto done, catalog->FinishJob(id, pb::JobRecord::DONE, ""));
  LOG_INFO("job %s: done, %d bytes copied", id, done.bytes_done());
  return absl::OkStatus();
}

absl::Status RelocateJob::FinishOwed() {
  while (true) {
    RETURN_IF_ERROR(ctx_->CheckStop());
    absl::Status s = FinishPending();
    if (s.ok()) return s;
    if (absl::IsAborted(s) || absl::IsNotFound(s)) return s;
    ctx_->Retry(job_, s).IgnoreError();
  }
}

absl::Status RelocateJob::MoveRetrying(uint64_t c, uint64_t first, uint64_t n, bool* copied) {
  ctx_->ResetBackoff();
  while (true) {
    RETURN_IF_ERROR(ctx_->CheckStop());
    absl::Status s = ctx_->CheckCancel(job_->id());
    if (s.ok()) s = RelocationBatch(ctx_, job_, c, first, n).Move(copied);
    // E and F.
    if (s.ok()) s = FinishPending();
    if (s.ok()) {
      ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* rec) {
        rec->set_next_block(first + n);
        rec->set_blocks_done(rec->blocks_done() + n);
        rec->set_error("");
      }));
      return absl::OkStatus();
    }
    if (ctx_->crashed() || absl::IsNotFound(s)) return s;
    if (ctx_->cancel_seen()) return absl::CancelledError("cancel requested");
    ctx_->Retry(job_, s).IgnoreError();
  }
}

absl::Status RelocateJob::EstimateTotals(const std::map<uint64_t, pb::BlockChunk>& chunks,
                                         const pb::DiskSpec& spec) {
  const uint64_t nblocks = BlockCount(spec);
  uint64_t blocks = 0;
  for (const auto& [c, chunk] : chunks) {
    blocks += std::min<uint64_t>(kChunkBlocks,
                                 nblocks > c * kChunkBlocks ? nblocks - c * kChunkBlocks : 0);
  }
  if (job_->kind() == pb::JobRecord::REPAIR) return EstimateRepair(chunks, spec, blocks);
  // Stored bytes per replica, times the replicas a block gains.
  ASSIGN_OR_RETURN(auto nodes, ctx_->catalog()->ListNodes());
  uint64_t stored = 0;
  for (const auto& n : nodes) {
    auto b = ctx_->peers()->StoredBytes(n.id(), job_->disk_id());
    if (b.ok()) stored += *b;
  }
  const uint64_t gained = ReplicasGained(chunks, nodes);
  const uint64_t replicas = std::max<uint32_t>(1, spec.placement().replicas());
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* r) {
    r->set_bytes_total(stored / replicas * gained);
    r->set_blocks_total(blocks);
  }));
  return absl::OkStatus();
}

// At most a block per replica to fill (only its stored pages travel).
absl::Status RelocateJob::EstimateRepair(const std::map<uint64_t, pb::BlockChunk>& chunks,
                                         const pb::DiskSpec& spec, uint64_t blocks) {
  const uint64_t nblocks = BlockCount(spec);
  ASSIGN_OR_RETURN(auto nodes, ctx_->catalog()->ListNodes());
  ASSIGN_OR_RETURN(auto live, ctx_->catalog()->LiveNodes());
  const RepairScope scope = ScopeOf(*job_, spec, nodes, live);
  uint64_t stale = 0;
  for (const auto& [c, chunk] : chunks) {
    for (int i = 0; i < chunk.blocks_size() && c * kChunkBlocks + i < nblocks; ++i) {
      const pb::BlockPtr& ptr = chunk.blocks(i);
      for (const auto& t : PlanRepair(ptr, scope, c * kChunkBlocks + i).targets) {
        const pb::Replica* r = FindReplica(ptr, t);
        stale += r == nullptr || r->state() != pb::CLEAN;
      }
    }
  }
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* r) {
    r->set_bytes_total(stale * spec.block_size());
    r->set_blocks_total(blocks);
  }));
  return absl::OkStatus();
}

uint64_t RelocateJob::ReplicasGained(const std::map<uint64_t, pb::BlockChunk>& chunks,
                                     const std::vector<pb::NodeInfo>& nodes) const {
  const pb::Placement& target = job_->target();
  if (chunks.empty() || chunks.begin()->second.blocks_size() == 0) return target.replicas();
  const auto& ptr = chunks.begin()->second.blocks(0);
  if (!target.nodes().empty()) {
    uint64_t gained = 0;
    for (const auto& n : target.nodes()) gained += FindReplica(ptr, n) == nullptr;
    return gained;
  }
  std::set<std::string> sites(target.sites().begin(), target.sites().end());
  std::map<std::string, std::string> site_of;
  for (const auto& n : nodes) site_of[n.id()] = n.site();
  uint64_t there = 0;
  for (const auto& r : ptr.replicas()) there += sites.count(site_of[r.node()]) > 0;
  return target.replicas() > there ? target.replicas() - there : 0;
}

absl::Status RelocateJob::FinishPending() {
  if (job_->pending().empty()) return absl::OkStatus();
  const uint64_t disk = job_->disk_id();
  ASSIGN_OR_RETURN(auto spec, ctx_->catalog()->GetSpec(disk));
  const uint64_t layout = spec.spec.layout_version();
  std::set<std::string> involved;
  for (const auto& p : job_->pending()) involved.insert(p.node());
  // E: no request under the layout before the switch is left on them.
  RETURN_IF_ERROR(ctx_->FenceAll(disk, layout, involved));
  RETURN_IF_ERROR(ctx_->CrashPoint("fenced-after-switch"));
  ASSIGN_OR_RETURN(auto live, ctx_->catalog()->LiveNodes());
  // F. One call per node and kind. A refused object is one whose switch never
  // happened (a runner died before it): the node keeps it and the batch runs again.
  std::map<std::pair<std::string, bool>, std::vector<pb::ObjectRef>> groups;
  for (const auto& p : job_->pending()) {
    if (!live.count(p.node())) {
      LOG_WARN("job %s: %s is down; its copy of disk %d block %d stays until it is dropped",
               job_->id(), p.node(), disk, p.block());
      continue;
    }
    groups[{p.node(), p.drop()}].push_back(ObjectOf(p.block(), p.generation()));
  }
  for (const auto& [key, objects] : groups) {
    auto refused = ctx_->peers()->Finish(
        key.first, JobHeader(disk, layout), objects,
        key.second ? pb::FinishObjectRequest::DROP : pb::FinishObjectRequest::CLEAR_MARKS);
    if (!refused.ok()) return Annotate(refused.status(), "finishing the batch on " + key.first);
  }
  RETURN_IF_ERROR(ctx_->CrashPoint("finished"));
  ASSIGN_OR_RETURN(
      *job_, ctx_->catalog()->UpdateJob(job_->id(), [](pb::JobRecord* r) { r->clear_pending(); }));
  return absl::OkStatus();
}

absl::Status RelocateJob::Cancel(uint64_t c, uint64_t first, uint64_t n) {
  const uint64_t disk = job_->disk_id();
  std::vector<std::pair<uint64_t, pb::Replica>> removed;
  std::map<uint64_t, std::vector<uint64_t>> objects_of;
  auto take_back = [&](pb::BlockChunk* ch) -> absl::StatusOr<bool> {
    removed.clear();
    for (uint64_t b = first; b < first + n; ++b) {
      pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(b - c * kChunkBlocks));
      objects_of[b] = OwnObjects(*ptr);
      pb::BlockPtr next = *ptr;
      next.clear_replicas();
      for (const auto& r : ptr->replicas()) {
        if (r.state() == pb::SYNCING) {
          removed.emplace_back(b, r);
        } else {
          *next.add_replicas() = r;
        }
      }
      *ptr = next;
    }
    return !removed.empty();
  };
  ASSIGN_OR_RETURN(auto spec, ctx_->catalog()->UpdateChunk(disk, c, take_back));
  std::set<std::string> nodes;
  for (const auto& [b, r] : removed) nodes.insert(r.node());
  RETURN_IF_ERROR(ctx_->FenceAll(disk, spec.layout_version(), nodes));
  std::map<std::string, std::vector<pb::ObjectRef>> partial;
  for (const auto& [b, r] : removed) {
    for (uint64_t g : objects_of[b]) partial[r.node()].push_back(ObjectOf(b, g));
  }
  for (const auto& [node, objects] : partial) {
    auto s = ctx_->peers()->Finish(node, JobHeader(disk, spec.layout_version()), objects,
                                   pb::FinishObjectRequest::DROP);
    if (!s.ok()) {
      LOG_WARN("job %s: dropping the partial copy on %s: %s", job_->id(), node,
               s.status().ToString());
    }
  }
  RETURN_IF_ERROR(ctx_->catalog()->SetPlacement(disk, job_->previous()).status());
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->FinishJob(job_->id(), pb::JobRecord::CANCELLED, ""));
  LOG_INFO("job %s: cancelled; blocks before %d moved, the rest stay", job_->id(), first);
  return absl::OkStatus();
}

}  // namespace ukai::control
