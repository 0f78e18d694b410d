#include "control/flatten_job.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"
#include "control/repair_plan.h"
#include "meta/generations.h"
#include "meta/placement.h"

namespace ukai::control {
namespace {

using meta::kChunkBlocks;
constexpr uint64_t kBatch = 32;                              // blocks per switch
constexpr absl::Duration kProgressEvery = absl::Seconds(1);  // within a batch

int Index(uint64_t b) { return static_cast<int>(b % kChunkBlocks); }

}  // namespace

absl::Status FlattenJob::Run() {
  ASSIGN_OR_RETURN(auto spec, ctx_->catalog()->GetSpec(job_->disk_id()));
  if (!spec.spec.has_parent()) {  // detached by an earlier run that died just after
    ASSIGN_OR_RETURN(*job_, ctx_->catalog()->FinishJob(job_->id(), pb::JobRecord::DONE, ""));
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(Begin(spec.spec));
  for (uint64_t first = job_->next_block(); first < nblocks_;) {
    RETURN_IF_ERROR(ctx_->CheckStop());
    ASSIGN_OR_RETURN(bool cancelled, Cancelled(first));
    if (cancelled) return absl::OkStatus();
    ASSIGN_OR_RETURN(Next next, RunBatch(first));
    if (next == Next::kNoParent) break;
    if (next == Next::kNextBatch) first = job_->next_block();
  }
  return Finish();
}

absl::Status FlattenJob::Begin(const pb::DiskSpec& spec) {
  const uint32_t bs = spec.block_size();
  nblocks_ = BlockCount(spec);
  // This runner's now; a batch an earlier one did not switch is copied
  // again, so its bytes come off the progress.
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* r) {
    r->set_runner(ctx_->env().self);
    r->set_blocks_total(nblocks_);
    // An upper bound: each replica of every block; zero blocks cost nothing.
    r->set_bytes_total(nblocks_ * bs * std::max<uint32_t>(1, spec.placement().replicas()));
    r->set_bytes_done(r->bytes_done() - std::min(r->bytes_done(), r->batch_bytes()));
    r->set_batch_bytes(0);
  }));
  LOG_INFO("job %s: flattening disk %s (%d) from block %d", job_->id(), job_->disk_name(),
           job_->disk_id(), job_->next_block());
  return absl::OkStatus();
}

absl::StatusOr<bool> FlattenJob::Cancelled(uint64_t first) {
  if (ctx_->CheckCancel(job_->id()).ok()) return false;
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->FinishJob(job_->id(), pb::JobRecord::CANCELLED, ""));
  LOG_INFO("job %s: flatten cancelled at block %d; the clone still reads its parent", job_->id(),
           first);
  return true;
}

absl::StatusOr<FlattenJob::Next> FlattenJob::RunBatch(uint64_t first) {
  Batch batch;
  batch.c = first / kChunkBlocks;
  batch.first = first;
  batch.last = std::min({first + kBatch, (batch.c + 1) * kChunkBlocks, nblocks_});
  ASSIGN_OR_RETURN(auto spec, ctx_->catalog()->GetSpec(job_->disk_id()));
  if (!spec.spec.has_parent()) return Next::kNoParent;
  batch.spec = std::move(spec.spec);
  batch.generation = batch.spec.generation();
  RETURN_IF_ERROR(ReadNodes());
  RETURN_IF_ERROR(ResolveSources(&batch));
  const bool any_data = std::any_of(batch.sources.begin(), batch.sources.end(),
                                    [](const auto& s) { return !s.second.zeros; });
  if (!batch.chunk && any_data) {
    RETURN_IF_ERROR(AllocateChunk(batch));
    return Next::kSameBatch;  // again, with its pointers
  }
  if (absl::Status again = FillAll(&batch); !again.ok()) {
    if (ctx_->crashed()) return again;  // the runner is "dead": nothing more
    RETURN_IF_ERROR(TakeBack(batch));
    RETURN_IF_ERROR(ctx_->Retry(job_, again));
    return Next::kSameBatch;
  }
  bool moved = false;
  RETURN_IF_ERROR(SwitchBatch(batch, &moved));
  if (moved) {  // filled again
    RETURN_IF_ERROR(TakeBack(batch));
    return Next::kSameBatch;
  }
  return EndBatch(&batch);
}

absl::StatusOr<FlattenJob::Next> FlattenJob::EndBatch(Batch* batch) {
  bool left = false;
  uint64_t unswitched = 0;
  RETURN_IF_ERROR(Unswitched(*batch, &left, &unswitched));
  if (left) {  // what was switched stays; the rest is copied again
    ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* r) {
      const uint64_t with_batch = r->bytes_done() + batch->bytes - batch->shown;
      r->set_bytes_done(with_batch - std::min(with_batch, unswitched));
      r->set_batch_bytes(0);
    }));
    RETURN_IF_ERROR(ctx_->Retry(job_, absl::UnavailableError(absl::StrFormat(
                                          "blocks [%d, %d): no clean replica could be filled",
                                          batch->first, batch->last))));
    return Next::kSameBatch;
  }
  ctx_->ResetBackoff();
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* r) {
    r->set_next_block(batch->last);
    r->set_blocks_done(batch->last);
    r->set_bytes_done(r->bytes_done() + batch->bytes - batch->shown);
    r->set_batch_bytes(0);
    r->set_error("");
  }));
  return Next::kNextBatch;
}

absl::Status FlattenJob::ReadNodes() {
  ASSIGN_OR_RETURN(nodes_, ctx_->catalog()->ListNodes());
  for (const auto& n : nodes_) {
    io_of_[n.id()] = n.io_address();
    site_of_[n.id()] = n.site();
  }
  return absl::OkStatus();
}

// What each block of the batch reads from, where it still reads through.
absl::Status FlattenJob::ResolveSources(Batch* batch) {
  ASSIGN_OR_RETURN(batch->chunk, ctx_->catalog()->ReadChunk(job_->disk_id(), batch->c));
  for (uint64_t b = batch->first; b < batch->last; ++b) {
    if (batch->chunk && !batch->chunk->chunk.blocks(Index(b)).inherited()) continue;
    ASSIGN_OR_RETURN(batch->sources[b],
                     ResolveInParents(batch->spec.parent(), batch->spec.block_size(), b));
  }
  return absl::OkStatus();
}

// Follows the parent links down to what block `b` reads at each level's
// snapshot generation.
absl::StatusOr<FlattenJob::Source> FlattenJob::ResolveInParents(pb::ParentRef parent,
                                                                uint32_t block_size, uint64_t b) {
  meta::Catalog* catalog = ctx_->catalog();
  for (int depth = 0; depth < 64; ++depth) {
    Source src;
    if (b * block_size >= parent.size()) return src;  // past the snapshot's end: zeros
    ASSIGN_OR_RETURN(auto p, catalog->GetSpec(parent.disk_id()));
    ASSIGN_OR_RETURN(auto chunk, catalog->ReadChunk(parent.disk_id(), b / kChunkBlocks));
    const bool clone = p.spec.has_parent();
    const meta::BlockView v =
        chunk ? meta::ViewOf(chunk->chunk.blocks(Index(b)), parent.generation(), clone)
              : meta::Unallocated(clone);
    if (v.kind == meta::BlockView::kZeros) return src;
    if (v.kind == meta::BlockView::kObject) {
      src.zeros = false;
      src.disk = parent.disk_id();
      src.layout = p.spec.layout_version();
      src.generation = v.generation;
      for (const auto& r : chunk->chunk.blocks(Index(b)).replicas()) {
        if (r.state() == pb::CLEAN) src.replicas.push_back(r.node());
      }
      return src;
    }
    parent = p.spec.parent();
  }
  return absl::FailedPreconditionError("clone chain too deep");
}

absl::Status FlattenJob::AllocateChunk(const Batch& batch) {
  ASSIGN_OR_RETURN(auto live_ids, ctx_->catalog()->LiveNodes());
  std::vector<pb::NodeInfo> live;
  for (const auto& n : nodes_) {
    if (live_ids.count(n.id())) live.push_back(n);
  }
  const uint64_t disk = job_->disk_id();
  ASSIGN_OR_RETURN(auto replicas, meta::ChooseReplicas(batch.spec.placement(), live, "",
                                                       disk * 1000003 + batch.c));
  return ctx_->catalog()->AllocateChunk(batch.spec, batch.c, replicas).status();
}

absl::Status FlattenJob::FillAll(Batch* batch) {
  batch->layout_of = {{job_->disk_id(), batch->spec.layout_version()}};
  batch->shown_at = ctx_->env().clock->Now();
  // Blocks with data have a chunk: without one the batch began again.
  for (const auto& [b, src] : batch->sources) {
    if (src.zeros) continue;
    if (src.replicas.empty()) {
      return absl::UnavailableError(
          absl::StrFormat("block %d: no clean replica of its parent's data is up", b));
    }
    for (const auto& r : batch->chunk->chunk.blocks(Index(b)).replicas()) {
      if (r.state() != pb::CLEAN) continue;
      auto got = FillReplica(batch, b, src, r.node());
      if (got.ok()) {
        batch->bytes += *got;
        batch->bytes_of[b] += *got;
      } else if (ctx_->crashed()) {
        return got.status();
      } else if (IsStaleLayout(got.status())) {
        return got.status();  // the replica is fine; the layout moves too fast
      } else {
        LOG_WARN("job %s: block %d on %s: %s", job_->id(), b, r.node(), got.status().ToString());
        batch->failed[b].push_back(r.node());
      }
      RETURN_IF_ERROR(ShowProgress(batch));
    }
  }
  return absl::OkStatus();
}

pb::FillRequest FlattenJob::FillRequestFor(Batch* batch, uint64_t b, const Source& src) {
  batch->layout_of.emplace(src.disk, src.layout);
  pb::FillRequest req;
  *req.mutable_hdr() = JobHeader(job_->disk_id(), batch->layout_of[job_->disk_id()]);
  req.set_block(b);
  req.set_generation(batch->generation);
  *req.mutable_source_hdr() = JobHeader(src.disk, batch->layout_of[src.disk]);
  req.set_source_generation(src.generation);
  req.set_bandwidth_bps(job_->bandwidth_bps());
  return req;
}

// Fills `node`'s object of block `b` from the replica of `src` nearest it
// (same node, then site; the next one if a source fails). The bytes
// copied; FAILED_PRECONDITION if the layouts kept moving under it.
absl::StatusOr<uint64_t> FlattenJob::FillReplica(Batch* batch, uint64_t b, const Source& src,
                                                 const std::string& node) {
  std::vector<std::string> from = src.replicas;
  std::stable_partition(from.begin(), from.end(), [&](const std::string& n) {
    return n == node || site_of_[n] == site_of_[node];
  });
  pb::FillRequest req = FillRequestFor(batch, b, src);
  absl::Status last;
  for (const auto& s : from) {
    req.set_source(s);
    req.set_source_io_address(io_of_[s]);
    for (int tries = 1;; ++tries) {
      RETURN_IF_ERROR(ctx_->CrashPoint("fill"));
      auto got = ctx_->peers()->Fill(node, req);
      if (got.ok()) {
        ctx_->Pace(got->bytes());
        return got->bytes();
      }
      last = got.status();
      if (!IsStaleLayout(last)) break;  // this source failed
      if (tries == 3) return last;
      // A stale layout: the clone's writes switched pointers (or the
      // parent's did) since it was read. Fill again at the new one.
      LOG_INFO("job %s: block %d on %s: %s; filling again", job_->id(), b, node, last.message());
      RETURN_IF_ERROR(RefreshLayouts(batch, src.disk, &req));
    }
  }
  return last;
}

absl::Status FlattenJob::RefreshLayouts(Batch* batch, uint64_t source_disk, pb::FillRequest* req) {
  const uint64_t disk = job_->disk_id();
  ASSIGN_OR_RETURN(auto mine, ctx_->catalog()->GetSpec(disk));
  ASSIGN_OR_RETURN(auto theirs, ctx_->catalog()->GetSpec(source_disk));
  batch->layout_of[disk] = mine.spec.layout_version();
  batch->layout_of[source_disk] = theirs.spec.layout_version();
  req->mutable_hdr()->set_layout_version(batch->layout_of[disk]);
  req->mutable_source_hdr()->set_layout_version(batch->layout_of[source_disk]);
  return absl::OkStatus();
}

absl::Status FlattenJob::ShowProgress(Batch* batch) {
  const absl::Time now = ctx_->env().clock->Now();
  if (batch->bytes == batch->shown || now - batch->shown_at < kProgressEvery) {
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* r) {
    r->set_bytes_done(r->bytes_done() + batch->bytes - batch->shown);
    r->set_batch_bytes(batch->bytes);
  }));
  batch->shown = batch->bytes;
  batch->shown_at = now;
  return absl::OkStatus();
}

absl::Status FlattenJob::TakeBack(const Batch& batch) {
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* r) {
    r->set_bytes_done(r->bytes_done() - std::min(r->bytes_done(), batch.shown));
    r->set_batch_bytes(0);
  }));
  return absl::OkStatus();
}

// A writer that got there first keeps what it made.
absl::Status FlattenJob::SwitchBatch(const Batch& batch, bool* moved) {
  auto change = [&](const pb::DiskSpec& now, pb::BlockChunk* ch) -> absl::StatusOr<bool> {
    *moved = now.generation() != batch.generation;
    if (*moved) return false;  // a snapshot of the clone meanwhile: fill again
    bool changed = false;
    for (const auto& [b, src] : batch.sources) {
      pb::BlockPtr* ptr = ch->mutable_blocks(Index(b));
      if (!ptr->inherited()) continue;
      auto f = batch.failed.find(b);
      const std::vector<std::string> failed =
          f == batch.failed.end() ? std::vector<std::string>() : f->second;
      size_t clean = 0, lost = 0;
      for (const auto& r : ptr->replicas()) {
        if (r.state() != pb::CLEAN) continue;
        ++clean;
        lost += Contains(failed, r.node());
      }
      // Data to copy and no clean replica filled: stays inherited, the
      // next run tries again. Zeros need no copy: an empty object.
      if (!src.zeros && (clean == 0 || lost == clean)) continue;
      meta::Advance(ptr, batch.generation, now);
      for (auto& r : *ptr->mutable_replicas()) {
        if (r.state() == pb::SYNCING || Contains(failed, r.node())) r.set_state(pb::STALE);
      }
      changed = true;
    }
    return changed;
  };
  return ctx_->catalog()->UpdateChunkWithSpec(job_->disk_id(), batch.c, change).status();
}

absl::Status FlattenJob::Unswitched(const Batch& batch, bool* left, uint64_t* bytes) {
  ASSIGN_OR_RETURN(auto after, ctx_->catalog()->ReadChunk(job_->disk_id(), batch.c));
  for (const auto& [b, src] : batch.sources) {
    if (after && after->chunk.blocks(Index(b)).inherited() && !src.zeros) {
      *left = true;
      auto it = batch.bytes_of.find(b);
      *bytes += it == batch.bytes_of.end() ? 0 : it->second;
    }
  }
  return absl::OkStatus();
}

// Every block with data is the clone's own; an unallocated chunk had none
// in the parent either. The link goes, and the parent's snapshot is free.
absl::Status FlattenJob::Finish() {
  ASSIGN_OR_RETURN(auto detached, ctx_->catalog()->DetachParent(job_->disk_id()));
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->FinishJob(job_->id(), pb::JobRecord::DONE, ""));
  LOG_INFO("job %s: disk %s flattened (layout %d); it no longer reads a parent", job_->id(),
           job_->disk_name(), detached.layout_version());
  return absl::OkStatus();
}

}  // namespace ukai::control
