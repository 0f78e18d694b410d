// Relocator::RunFlatten: the FLATTEN job (docs/ARCHITECTURE.md, "Flatten").
// Block by block, in batches of a chunk's blocks: every block of the clone
// that still reads through to its parent gets an object of its own at the
// clone's generation, filled on each of its CLEAN replicas from the nearest
// replica of the ancestor object it reads (FillRequest: only where the
// clone's own first write has not made it meanwhile), then one
// compare-and-set per batch switches the pointers. When every block is its
// own, the parent link goes (Catalog::DetachParent) and the parent's
// snapshot may be deleted. The VM keeps writing throughout; progress is in
// the job record, and a runner that dies is followed by another that starts
// again at the first batch not switched.
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/generations.h"
#include "meta/placement.h"
#include "node/relocator.h"

namespace ukai::node {
namespace {

using meta::kChunkBlocks;
constexpr uint64_t kBatch = 32;  // blocks per switch and progress update

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
  if (job->blocks_total() != nblocks) {
    ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
      r->set_blocks_total(nblocks);
      r->set_bytes_total(nblocks * bs);  // an upper bound: zero blocks cost nothing
    }));
  }
  LOG_INFO("job %s: flattening disk %s (%d) from block %d", id, job->disk_name(), disk,
           job->next_block());
  std::map<std::string, std::string> io_of, site_of;
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
    uint64_t bytes = 0;
    if (chunk) {
      for (const auto& [b, src] : sources) {
        if (src.zeros) continue;
        if (src.replicas.empty()) {
          return absl::UnavailableError(absl::StrFormat(
              "block %d: no clean replica of its parent's data is up", b));
        }
        const auto& ptr = chunk->chunk.blocks(static_cast<int>(b % kChunkBlocks));
        for (const auto& r : ptr.replicas()) {
          if (r.state() != pb::CLEAN) continue;
          // The parent's replica nearest the destination: same node, then site.
          std::vector<std::string> from = src.replicas;
          std::stable_partition(from.begin(), from.end(), [&](const std::string& n) {
            return n == r.node() || site_of[n] == site_of[r.node()];
          });
          pb::FillRequest req;
          *req.mutable_hdr() = JobHdr(disk, spec.spec.layout_version());
          req.set_block(b);
          req.set_generation(gen);
          *req.mutable_source_hdr() = JobHdr(src.disk, src.layout);
          req.set_source_generation(src.generation);
          req.set_bandwidth_bps(job->bandwidth_bps());
          absl::Status last_error;
          bool ok = false;
          for (const auto& s : from) {
            req.set_source(s);
            req.set_source_io_address(io_of[s]);
            auto got = nodes_->Fill(r.node(), req);
            if (got.ok()) {
              bytes += got->bytes();
              pace_->Acquire(got->bytes());
              ok = true;
              break;
            }
            last_error = got.status();
          }
          if (!ok) {
            LOG_WARN("job %s: block %d on %s: %s", id, b, r.node(), last_error.ToString());
            failed[b].push_back(r.node());
          }
        }
      }
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
    if (moved) continue;
    bool left = false;
    {
      ASSIGN_OR_RETURN(auto after, catalog_->ReadChunk(disk, c));
      for (const auto& [b, src] : sources) {
        left = left || (after && after->chunk.blocks(static_cast<int>(b % kChunkBlocks)).inherited() &&
                        !src.zeros);
      }
    }
    if (left) {
      return absl::UnavailableError(absl::StrFormat(
          "blocks [%d, %d): a clean replica could not be filled; the job tries again", first, last));
    }
    ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
      r->set_next_block(last);
      r->set_blocks_done(last);
      r->set_bytes_done(r->bytes_done() + bytes);
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
