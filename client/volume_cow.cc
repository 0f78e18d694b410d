// VolumeImpl, copy-on-write: a write to a block a snapshot (or a clone's
// parent) still reads gives the block an object of its own first, then
// switches the pointer (docs/ARCHITECTURE.md, "Snapshots and clones").
#include <cstring>
#include <set>

#include "absl/algorithm/container.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/volume_impl.h"
#include "client/volume_rules.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_format.h"
#include "meta/placement.h"

namespace ukai::client {

namespace {
// Holds a block in a set for one thread at a time (VolumeImpl::cow_busy_).
class BusyBlock {
 public:
  BusyBlock(absl::Mutex* mu, std::set<uint64_t>* busy, uint64_t block)
      : mu_(mu), busy_(busy), block_(block) {
    absl::MutexLock l(mu_);
    struct Free {
      std::set<uint64_t>* busy;
      uint64_t block;
      bool operator()() const { return !busy->count(block); }
    } free{busy_, block_};
    mu_->Await(absl::Condition(&free));
    busy_->insert(block_);
  }
  ~BusyBlock() {
    absl::MutexLock l(mu_);
    busy_->erase(block_);
  }

 private:
  absl::Mutex* mu_;
  std::set<uint64_t>* busy_;
  const uint64_t block_;
};
}  // namespace

// Copy-on-write, in three steps, each safe to die after:
//  1. the block's CLEAN replicas make the new object (a node-side copy of the
//     object the snapshot keeps; or, for a clone's block, a whole-block write
//     of the parent's data with this write merged in), durably;
//  2. one compare-and-set switches the pointer to it, keeping the old state
//     for the snapshots that read it, marking the replicas that failed step
//     1 (and SYNCING ones: their copy starts over) STALE, and bumping the
//     layout: requests under the old pointer are turned away from then on;
//  3. the write goes to the new object (the clone's already did).
// A crash before 2 leaves an unused object at the current generation that
// the next try overwrites; the pointer never names an object not yet made.
absl::Status VolumeImpl::GiveOwnObject(uint64_t block, uint32_t off, const char* data, uint32_t len,
                                       uint64_t epoch, const std::vector<std::string>& partial,
                                       bool* written) {
  *written = false;
  BusyBlock busy(&cow_mu_, &cow_busy_, block);
  bool marked_partial = partial.empty();
  // Right after a snapshot every write copies, and each chunk's switch moves
  // the layout on, turning away the copies in flight: more tries than a
  // plain write gets.
  for (int attempt = 0; attempt < 8 * kMaxAttempts; ++attempt) {
    ASSIGN_OR_RETURN(BlockRef ref, GetBlock(block, /*allocate=*/true));
    pb::DiskSpec spec;
    {
      absl::MutexLock l(&mu_);
      spec = spec_;
    }
    if (!meta::NeedsNewObject(ref.ptr(), spec)) return absl::OkStatus();  // done meanwhile
    if (!marked_partial) {
      marked_partial = true;
      ASSIGN_OR_RETURN(bool marked, MarkPartial(block, ref, partial));
      if (marked) continue;
    }
    std::vector<std::string> targets = CleanReplicas(ref);
    if (targets.empty()) {
      return absl::UnavailableError(
          absl::StrFormat("disk %d block %d: no clean replica to copy on write", id_, block));
    }
    CowCopy copy;  // step 1
    RETURN_IF_ERROR(MakeOwnObject(ref, spec, block, off, data, len, epoch, targets, &copy));
    if (copy.stale_layout) {
      RETURN_IF_ERROR(CatchUp(ref.layout_version));
      continue;
    }
    const uint32_t need = Needed(Policy(), ref);
    if (copy.ok.size() < need || copy.ok.empty()) {
      return absl::UnavailableError(absl::StrFormat(
          "disk %d block %d: copy on write reached %d replica(s), the policy needs %d: %s", id_,
          block, copy.ok.size(), need, copy.last.ToString()));
    }
    // Step 2, with the other switches of the chunk waiting meanwhile.
    const bool inherited = ref.ptr().inherited();
    Switch sw{block, inherited, ref.ptr().generation(), spec.generation(), targets, copy.ok, false,
              false, false,     absl::OkStatus()};
    auto r = SwitchPointers(block / meta::kChunkBlocks, &sw);  // also updates the cached layout
    if (absl::IsNotFound(r)) return r;
    if (absl::IsAborted(r)) continue;  // contention: copy and switch again
    RETURN_IF_ERROR(r);
    if (sw.raced) continue;
    if (!copy.failed.empty()) {
      LOG_WARN("disk %d block %d: copy on write failed on %s (%s); marked stale", id_, block,
               absl::StrJoin(copy.failed, ","), copy.last.ToString());
    }
    if (inherited && sw.switched) {  // step 3 was the clone's whole-block write
      absl::MutexLock l(&mu_);
      for (const auto& n : copy.ok) dirty_[n].insert(block);
      *written = true;
    }
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrFormat("disk %d block %d: layout kept changing during copy on write", id_, block));
}

absl::StatusOr<bool> VolumeImpl::MarkPartial(uint64_t block, const BlockRef& ref,
                                             const std::vector<std::string>& partial) {
  // That object must read the same everywhere, so they go stale (and are
  // copied back whole).
  bool other_clean = false;
  for (const auto& r : ref.ptr().replicas()) {
    other_clean =
        other_clean || (r.state() == pb::CLEAN && !absl::c_linear_search(partial, r.node()));
  }
  if (ref.ptr().inherited() || !other_clean) return false;
  LOG_WARN("disk %d block %d: a write landed on %s only, across a snapshot; marking stale", id_,
           block, absl::StrJoin(partial, ","));
  RETURN_IF_ERROR(MarkStale(block, partial));
  return true;
}

absl::Status VolumeImpl::MakeOwnObject(const BlockRef& ref, const pb::DiskSpec& spec,
                                       uint64_t block, uint32_t off, const char* data, uint32_t len,
                                       uint64_t epoch, const std::vector<std::string>& targets,
                                       CowCopy* out) {
  const bool inherited = ref.ptr().inherited();
  std::string whole;  // a clone's block: the parent's data, this write merged in
  pb::WriteRequest wreq;
  pb::CopyUpRequest creq;
  if (inherited) {
    const uint64_t block_len =
        std::min<uint64_t>(spec.block_size(), spec.size() - block * spec.block_size());
    whole.assign(block_len, '\0');
    // A block left inherited by a flatten (its parent had zeros there)
    // reads as zeros once the disk has no parent.
    if (spec.has_parent()) {
      RETURN_IF_ERROR(ReadParent(block, 0, static_cast<uint32_t>(block_len), whole.data()));
    }
    memcpy(whole.data() + off, data, len);
    *wreq.mutable_hdr() = Header(ref.layout_version, epoch);
    wreq.set_block(block);
    wreq.set_generation(spec.generation());
    wreq.set_offset(0);
  } else {
    *creq.mutable_hdr() = Header(ref.layout_version, epoch);
    creq.set_block(block);
    creq.set_generation(spec.generation());
    creq.set_from_generation(ref.ptr().generation());
  }
  const std::string meta = inherited ? wreq.SerializeAsString() : creq.SerializeAsString();
  std::deque<NodeCall> calls;
  for (const auto& node : targets) {
    auto io = pool_->Io(node);
    if (!io.ok()) {
      out->failed.push_back(node);
      out->last = io.status();
      continue;
    }
    calls.push_back(NodeCall{node, *io, {}});
    wire::WireCall& call = calls.back().call;
    call.method = inherited ? wire::kWrite : wire::kCopyUp;
    call.meta = meta;
    if (inherited) {
      call.data = whole.data();
      call.data_len = whole.size();
    }
  }
  wire::WireWaiter waiter;
  for (auto& nc : calls) nc.io->Start(&nc.call, &waiter);
  waiter.WaitAll(Deadline(opts_->rpc_timeout_ms * 2));
  for (auto& nc : calls) {
    const absl::Status& st = nc.call.status;
    if (st.ok()) {
      out->ok.push_back(nc.node);
    } else if (IsStaleLayout(st)) {
      out->stale_layout = true;
    } else if (IsFenced(st)) {
      absl::MutexLock l(&writer_mu_);
      fenced_ = true;
      return FencedError(st.message());
    } else if (absl::IsNotFound(st) || absl::IsOutOfRange(st) || absl::IsInvalidArgument(st)) {
      return st;
    } else {
      out->failed.push_back(nc.node);
      out->last = Annotate(st, "replica " + nc.node);
    }
  }
  return absl::OkStatus();
}

// Group commit: the first switch of a chunk to arrive takes every switch
// queued for that chunk meanwhile into one compare-and-set (one layout bump,
// one turn of retries), while the others wait for its answer. Right after a
// snapshot, under random writes, every write copies: one switch each would
// contend on the same znodes and turn each other's writes away.
absl::Status VolumeImpl::SwitchPointers(uint64_t chunk, Switch* mine) {
  absl::MutexLock l(&switch_mu_);
  switch_queue_[chunk].push_back(mine);
  while (!mine->done && switching_.count(chunk) != 0) switch_cv_.Wait(&switch_mu_);
  if (mine->done) return mine->status;  // else nobody leads: this one does
  switching_.insert(chunk);
  while (!switch_queue_[chunk].empty()) {
    std::vector<Switch*> batch;
    batch.swap(switch_queue_[chunk]);
    switch_mu_.Unlock();
    const int base = static_cast<int>(chunk * meta::kChunkBlocks);
    bool any = false;
    pb::BlockChunk seen;
    auto r = catalog_->UpdateChunkWithSpec(
        id_, chunk,
        [&](const pb::DiskSpec& now, pb::BlockChunk* ch) -> absl::StatusOr<bool> {
          any = false;
          for (Switch* sw : batch) {
            sw->switched = sw->raced = false;
            pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(sw->block) - base);
            // Every CLEAN replica must have been asked to copy: one that
            // joined since (a relocation's) would otherwise be marked stale.
            const bool asked = absl::c_all_of(ptr->replicas(), [&](const pb::Replica& rep) {
              return rep.state() != pb::CLEAN || absl::c_linear_search(sw->targets, rep.node());
            });
            if (ptr->inherited() != sw->inherited || ptr->generation() != sw->from ||
                now.generation() != sw->gen || !asked) {
              sw->raced = true;  // another switch, snapshot or move: look again
              continue;
            }
            meta::Advance(ptr, sw->gen, now);
            for (auto& rep : *ptr->mutable_replicas()) {
              const bool took = std::find(sw->ok.begin(), sw->ok.end(), rep.node()) != sw->ok.end();
              if (rep.state() == pb::SYNCING || (rep.state() == pb::CLEAN && !took)) {
                rep.set_state(pb::STALE);
              }
            }
            sw->switched = any = true;
          }
          return any;
        },
        &seen);
    absl::Status status = r.status();
    if (status.ok()) status = AdoptOwnChange(*r, any, chunk, std::move(seen));
    switch_mu_.Lock();
    for (Switch* sw : batch) {
      sw->status = status;
      sw->done = true;
    }
    switch_cv_.SignalAll();
  }
  switching_.erase(chunk);
  switch_queue_.erase(chunk);
  switch_cv_.SignalAll();
  return mine->status;
}

absl::Status VolumeImpl::CatchUp(uint64_t sent) {
  {
    absl::MutexLock l(&mu_);
    if (spec_.layout_version() > sent) return absl::OkStatus();  // a retry sends the newer one
  }
  return RefreshLayout(/*arm_watch=*/false);
}

absl::Status VolumeImpl::AdoptOwnChange(const pb::DiskSpec& spec, bool changed, uint64_t c,
                                        pb::BlockChunk chunk) {
  {
    absl::MutexLock l(&mu_);
    const uint64_t have = spec_.layout_version(), now = spec.layout_version();
    // Unchanged, the chunk was read after a spec of the cached version: it
    // is at least that new. Changed, our compare-and-set moved the layout
    // from `have` to `now` with nothing in between: only this chunk differs.
    if (now == have + (changed ? 1 : 0) && spec.generation() == spec_.generation() &&
        spec.has_parent() == spec_.has_parent()) {
      spec_ = spec;
      chunks_[c] = std::make_shared<const pb::BlockChunk>(std::move(chunk));
      return absl::OkStatus();
    }
  }
  return RefreshLayout(/*arm_watch=*/false);
}

}  // namespace ukai::client
