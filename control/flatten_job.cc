// Relocator::RunFlatten: the FLATTEN job (docs/ARCHITECTURE.md, "Flatten").
// Block by block, in batches of a chunk's blocks: every block of the clone
// that still reads through to its parent gets an object of its own at the
// clone's generation, filled on each of its CLEAN replicas from the nearest
// replica of the ancestor object it reads (FillRequest: only where the
// clone's own first write has not made it meanwhile), then one
// compare-and-set per batch switches the pointers. When every block is its
// own, the parent link goes (Catalog::DetachParent) and the parent's
// snapshot may be deleted. The VM keeps writing throughout (its copy-ups
// move the layout under the fills, which then fill again at the new one);
// progress is in the job record as the bytes go, a batch that cannot finish
// now is tried again with a backoff, and a runner that dies is followed by
// another that starts again at the first batch not switched.
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/generations.h"
#include "meta/placement.h"
#include "node/relocator.h"

namespace ukai::node {
namespace {

using meta::kChunkBlocks;
constexpr uint64_t kBatch = 32;  // blocks per switch
constexpr absl::Duration kProgressEvery = absl::Seconds(1);  // within a batch

// Where a clone's block reads from: an ancestor's object, or nothing (zeros).
struct Source {
  bool zeros = true;
  uint64_t disk = 0, layout = 0, generation = 0;
  std::vector<std::string> replicas;  // CLEAN ones
};

// Follows the parent links down to what block `b` reads at each level's
// snapshot generation.
absl::StatusOr<Source> ResolveInParents(meta::Catalog* catalog, pb::ParentRef parent,
                                               uint32_t block_size, uint64_t b) {
  for (int depth = 0; depth < 64; ++depth) {
    Source src;
    if (b * block_size >= parent.size()) return src;  // past the snapshot's end: zeros
    ASSIGN_OR_RETURN(auto p, catalog->GetSpec(parent.disk_id()));
    ASSIGN_OR_RETURN(auto chunk, catalog->ReadChunk(parent.disk_id(), b / kChunkBlocks));
    const bool clone = p.spec.has_parent();
    const meta::BlockView v =
        chunk ? meta::ViewOf(chunk->chunk.blocks(static_cast<int>(b % kChunkBlocks)),
                             parent.generation(), clone)
              : meta::Unallocated(clone);
    if (v.kind == meta::BlockView::kZeros) return src;
    if (v.kind == meta::BlockView::kObject) {
      src.zeros = false;
      src.disk = parent.disk_id();
      src.layout = p.spec.layout_version();
      src.generation = v.generation;
      for (const auto& r : chunk->chunk.blocks(static_cast<int>(b % kChunkBlocks)).replicas()) {
        if (r.state() == pb::CLEAN) src.replicas.push_back(r.node());
      }
      return src;
    }
    parent = p.spec.parent();
  }
  return absl::FailedPreconditionError("clone chain too deep");
}

}  // namespace

absl::Status Relocator::RunFlatten(pb::JobRecord* job) {
  const std::string id = job->id();
  const uint64_t disk = job->disk_id();
  ASSIGN_OR_RETURN(auto spec, catalog_->GetSpec(disk));
  if (!spec.spec.has_parent()) {  // detached by an earlier run that died just after
    ASSIGN_OR_RETURN(*job, catalog_->FinishJob(id, pb::JobRecord::DONE, ""));
    return absl::OkStatus();
  }
  const uint32_t bs = spec.spec.block_size();
  const uint64_t nblocks = (spec.spec.size() + bs - 1) / bs;
  // This runner's now; a batch an earlier one did not switch is copied
  // again, so its bytes come off the progress.
  ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
    r->set_runner(self_);
    r->set_blocks_total(nblocks);
    // An upper bound: each replica of every block; zero blocks cost nothing.
    r->set_bytes_total(nblocks * bs * std::max<uint32_t>(1, spec.spec.placement().replicas()));
    r->set_bytes_done(r->bytes_done() - std::min(r->bytes_done(), r->batch_bytes()));
    r->set_batch_bytes(0);
  }));
  LOG_INFO("job %s: flattening disk %s (%d) from block %d", id, job->disk_name(), disk,
           job->next_block());
  std::map<std::string, std::string> io_of, site_of;
  // A batch that cannot finish now (a source down, a layout that keeps
  // moving under a busy writer) is tried again, as a relocation's is.
  absl::Duration backoff = opts_.retry_min;
  auto retry = [&](const absl::Status& s) -> absl::Status {
    LOG_WARN("job %s: %s; retrying in %s", id, s.ToString(), absl::FormatDuration(backoff));
    ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
      r->set_error("retrying: " + std::string(s.message()));
    }));
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, opts_.retry_max);
    return absl::OkStatus();
  };
  for (uint64_t first = job->next_block(); first < nblocks;) {
    if (stop_()) return absl::AbortedError("stopping");
    if (absl::Status s = CheckCancel(id); !s.ok()) {
      ASSIGN_OR_RETURN(*job, catalog_->FinishJob(id, pb::JobRecord::CANCELLED, ""));
      LOG_INFO("job %s: flatten cancelled at block %d; the clone still reads its parent", id, first);
      return absl::OkStatus();
    }
    const uint64_t c = first / kChunkBlocks;
    const uint64_t last = std::min({first + kBatch, (c + 1) * kChunkBlocks, nblocks});
    ASSIGN_OR_RETURN(spec, catalog_->GetSpec(disk));
    if (!spec.spec.has_parent()) break;
    ASSIGN_OR_RETURN(auto nodes, catalog_->ListNodes());
    for (const auto& n : nodes) {
      io_of[n.id()] = n.io_address();
      site_of[n.id()] = n.site();
    }
    // What each block of the batch reads from, where it still reads through.
    ASSIGN_OR_RETURN(auto chunk, catalog_->ReadChunk(disk, c));
    std::map<uint64_t, Source> sources;
    for (uint64_t b = first; b < last; ++b) {
      if (chunk && !chunk->chunk.blocks(static_cast<int>(b % kChunkBlocks)).inherited()) continue;
      ASSIGN_OR_RETURN(sources[b], ResolveInParents(catalog_, spec.spec.parent(), bs, b));
    }
    bool any_data = false;
    for (const auto& [b, src] : sources) any_data = any_data || !src.zeros;
    if (!chunk && any_data) {
      // The clone never wrote here: its blocks get pointers (inherited)
      // first, placed as the clone's placement says.
      ASSIGN_OR_RETURN(auto live_ids, catalog_->LiveNodes());
      std::vector<pb::NodeInfo> live;
      for (const auto& n : nodes) {
        if (live_ids.count(n.id())) live.push_back(n);
      }
      ASSIGN_OR_RETURN(auto replicas, meta::ChooseReplicas(spec.spec.placement(), live, "",
                                                           disk * 1000003 + c));
      RETURN_IF_ERROR(catalog_->AllocateChunk(spec.spec, c, replicas).status());
      continue;  // the batch again, with its pointers
    }
    // Fill every CLEAN replica of every block with data to copy.
    const uint64_t gen = spec.spec.generation();
    std::map<uint64_t, std::vector<std::string>> failed;
    uint64_t bytes = 0, shown = 0;  // copied in this batch; of it, in the job record
    std::map<uint64_t, uint64_t> bytes_of;  // per block
    absl::Time shown_at = absl::Now();
    auto show_progress = [&]() -> absl::Status {
      if (bytes == shown || absl::Now() - shown_at < kProgressEvery) return absl::OkStatus();
      ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
        r->set_bytes_done(r->bytes_done() + bytes - shown);
        r->set_batch_bytes(bytes);
      }));
      shown = bytes;
      shown_at = absl::Now();
      return absl::OkStatus();
    };
    // What the job record shows of this batch comes off when it is copied again.
    auto take_back = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
        r->set_bytes_done(r->bytes_done() - std::min(r->bytes_done(), shown));
        r->set_batch_bytes(0);
      }));
      return absl::OkStatus();
    };
    // Layouts to fill at, by disk: as read, until a node says they moved.
    std::map<uint64_t, uint64_t> layout_of = {{disk, spec.spec.layout_version()}};
    // Fills `node`'s object of block `b` from the replica of `src` nearest
    // it (same node, then site; the next one if a source fails). The bytes
    // copied; FAILED_PRECONDITION if the layouts kept moving under it.
    auto fill = [&](uint64_t b, const Source& src, const std::string& node) -> absl::StatusOr<uint64_t> {
      std::vector<std::string> from = src.replicas;
      std::stable_partition(from.begin(), from.end(), [&](const std::string& n) {
        return n == node || site_of[n] == site_of[node];
      });
      layout_of.emplace(src.disk, src.layout);
      pb::FillRequest req;
      *req.mutable_hdr() = JobHdr(disk, layout_of[disk]);
      req.set_block(b);
      req.set_generation(gen);
      *req.mutable_source_hdr() = JobHdr(src.disk, layout_of[src.disk]);
      req.set_source_generation(src.generation);
      req.set_bandwidth_bps(job->bandwidth_bps());
      absl::Status last;
      for (const auto& s : from) {
        req.set_source(s);
        req.set_source_io_address(io_of[s]);
        for (int tries = 1;; ++tries) {
          if (Crash("fill")) return Crashed("fill");
          auto got = nodes_->Fill(node, req);
          if (got.ok()) {
            pace_->Acquire(got->bytes());
            return got->bytes();
          }
          last = got.status();
          if (!absl::IsFailedPrecondition(last)) break;  // this source failed
          if (tries == 3) return last;
          // A stale layout: the clone's writes switched pointers (or the
          // parent's did) since it was read. Fill again at the new one.
          LOG_INFO("job %s: block %d on %s: %s; filling again", id, b, node, last.message());
          ASSIGN_OR_RETURN(auto mine, catalog_->GetSpec(disk));
          ASSIGN_OR_RETURN(auto theirs, catalog_->GetSpec(src.disk));
          layout_of[disk] = mine.spec.layout_version();
          layout_of[src.disk] = theirs.spec.layout_version();
          req.mutable_hdr()->set_layout_version(layout_of[disk]);
          req.mutable_source_hdr()->set_layout_version(layout_of[src.disk]);
        }
      }
      return last;
    };
    absl::Status again;  // not a replica's fault: the whole batch again
    // Blocks with data have a chunk: without one the batch began again above.
    for (const auto& [b, src] : sources) {
      if (src.zeros) continue;
      if (src.replicas.empty()) {
        again = absl::UnavailableError(
            absl::StrFormat("block %d: no clean replica of its parent's data is up", b));
        break;
      }
      for (const auto& r : chunk->chunk.blocks(static_cast<int>(b % kChunkBlocks)).replicas()) {
        if (r.state() != pb::CLEAN) continue;
        auto got = fill(b, src, r.node());
        if (got.ok()) {
          bytes += *got;
          bytes_of[b] += *got;
        } else if (crashed_) {
          return got.status();
        } else if (absl::IsFailedPrecondition(got.status())) {
          again = got.status();  // the replica is fine; the layout moves too fast
          break;
        } else {
          LOG_WARN("job %s: block %d on %s: %s", id, b, r.node(), got.status().ToString());
          failed[b].push_back(r.node());
        }
        RETURN_IF_ERROR(show_progress());
      }
      if (!again.ok()) break;
    }
    if (!again.ok()) {
      RETURN_IF_ERROR(take_back());
      RETURN_IF_ERROR(retry(again));
      continue;
    }
    // Switch: each block still inherited, at the generation filled, becomes
    // its own; a writer that got there first keeps what it made.
    bool moved = false;
    RETURN_IF_ERROR(catalog_->UpdateChunkWithSpec(
        disk, c, [&](const pb::DiskSpec& now, pb::BlockChunk* ch) -> absl::StatusOr<bool> {
          moved = now.generation() != gen;
          if (moved) return false;  // a snapshot of the clone meanwhile: fill again
          bool changed = false;
          for (const auto& [b, src] : sources) {
            pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(b % kChunkBlocks));
            if (!ptr->inherited()) continue;
            const auto& f = failed[b];
            size_t clean = 0, lost = 0;
            for (const auto& r : ptr->replicas()) {
              if (r.state() != pb::CLEAN) continue;
              ++clean;
              lost += std::find(f.begin(), f.end(), r.node()) != f.end();
            }
            // Data to copy and no clean replica filled: stays inherited, the
            // next run tries again. Zeros need no copy: an empty object.
            if (!src.zeros && (clean == 0 || lost == clean)) continue;
            meta::Advance(ptr, gen, now);
            for (auto& r : *ptr->mutable_replicas()) {
              if (r.state() == pb::SYNCING || std::find(f.begin(), f.end(), r.node()) != f.end()) {
                r.set_state(pb::STALE);
              }
            }
            changed = true;
          }
          return changed;
        }).status());
    if (moved) {  // filled again
      RETURN_IF_ERROR(take_back());
      continue;
    }
    bool left = false;
    uint64_t unswitched = 0;  // bytes copied to blocks still inherited
    {
      ASSIGN_OR_RETURN(auto after, catalog_->ReadChunk(disk, c));
      for (const auto& [b, src] : sources) {
        if (after && after->chunk.blocks(static_cast<int>(b % kChunkBlocks)).inherited() &&
            !src.zeros) {
          left = true;
          unswitched += bytes_of[b];
        }
      }
    }
    if (left) {  // what was switched stays; the rest is copied again
      ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
        const uint64_t with_batch = r->bytes_done() + bytes - shown;
        r->set_bytes_done(with_batch - std::min(with_batch, unswitched));
        r->set_batch_bytes(0);
      }));
      RETURN_IF_ERROR(retry(absl::UnavailableError(absl::StrFormat(
          "blocks [%d, %d): no clean replica could be filled", first, last))));
      continue;
    }
    backoff = opts_.retry_min;
    ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
      r->set_next_block(last);
      r->set_blocks_done(last);
      r->set_bytes_done(r->bytes_done() + bytes - shown);
      r->set_batch_bytes(0);
      r->set_error("");
    }));
    first = last;
  }
  // Every block with data is the clone's own; an unallocated chunk had none
  // in the parent either. The link goes, and the parent's snapshot is free.
  ASSIGN_OR_RETURN(auto detached, catalog_->DetachParent(disk));
  ASSIGN_OR_RETURN(*job, catalog_->FinishJob(id, pb::JobRecord::DONE, ""));
  LOG_INFO("job %s: disk %s flattened (layout %d); it no longer reads a parent", id,
           job->disk_name(), detached.layout_version());
  return absl::OkStatus();
}

}  // namespace ukai::node
