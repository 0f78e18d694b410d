#include "control/relocation_batch.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/executor.h"
#include "common/log.h"
#include "common/status.h"
#include "control/repair_plan.h"
#include "meta/generations.h"
#include "meta/layout.h"

namespace ukai::control {

using meta::kChunkBlocks;
using meta::OwnObjects;

const pb::BlockPtr& RelocationBatch::PtrOf(uint64_t b) const {
  return chunk_.blocks(static_cast<int>(b - chunk_index_ * kChunkBlocks));
}

pb::BlockPtr* RelocationBatch::MutablePtr(pb::BlockChunk* ch, uint64_t b) const {
  return ch->mutable_blocks(static_cast<int>(b - chunk_index_ * kChunkBlocks));
}

std::map<std::string, std::string> RelocationBatch::SiteOf() const {
  std::map<std::string, std::string> site_of;
  for (const auto& node : nodes_) site_of[node.id()] = node.site();
  return site_of;
}

absl::Status RelocationBatch::Move(bool* copied_any) {
  *copied_any = false;
  RETURN_IF_ERROR(ReadState());
  bool all_done = false;
  RETURN_IF_ERROR(Plan(&all_done));
  if (all_done) return absl::OkStatus();  // moved by an earlier run
  RETURN_IF_ERROR(DropStaleTargets());
  RETURN_IF_ERROR(ctx_->CrashPoint("before-syncing"));
  RETURN_IF_ERROR(JoinAsSyncing());
  RETURN_IF_ERROR(ctx_->CrashPoint("syncing"));
  RETURN_IF_ERROR(FenceInvolved());
  RETURN_IF_ERROR(ctx_->CrashPoint("fenced"));
  RETURN_IF_ERROR(ListCopies());
  SkipEmpty();
  *copied_any = !to_copy_.empty();
  RETURN_IF_ERROR(PullAll());
  RETURN_IF_ERROR(SyncTargets());
  // A cancel that came during the copy takes this batch back, not forward.
  RETURN_IF_ERROR(ctx_->CheckCancel(job_->id()));
  RETURN_IF_ERROR(RecordPending());
  RETURN_IF_ERROR(ctx_->CrashPoint("pending"));
  RETURN_IF_ERROR(Switch());
  return ctx_->CrashPoint("switched");
}

absl::Status RelocationBatch::ReadState() {
  meta::Catalog* catalog = ctx_->catalog();
  ASSIGN_OR_RETURN(auto spec, catalog->GetSpec(disk_));
  spec_ = std::move(spec.spec);
  nblocks_ = BlockCount(spec_);
  ASSIGN_OR_RETURN(nodes_, catalog->ListNodes());
  ASSIGN_OR_RETURN(live_, catalog->LiveNodes());
  ASSIGN_OR_RETURN(auto chunk, catalog->ReadChunk(disk_, chunk_index_));
  if (!chunk) {
    return absl::NotFoundError(absl::StrFormat("disk %d chunk %d is gone", disk_, chunk_index_));
  }
  chunk_ = std::move(chunk->chunk);
  return absl::OkStatus();
}

absl::Status RelocationBatch::Plan(bool* all_done) {
  const RepairScope scope = ScopeOf(*job_, spec_, nodes_, live_);
  *all_done = true;
  for (uint64_t b = first_; b < last_; ++b) {
    const pb::BlockPtr& ptr = PtrOf(b);
    std::vector<std::string> t;
    if (repair_) {
      RepairPlan plan = PlanRepair(ptr, scope, b);
      t = std::move(plan.targets);
      kept_[b] = std::move(plan.kept);
    } else {
      ASSIGN_OR_RETURN(t, RelocationTargets(ptr, job_->target(), nodes_, live_, b));
    }
    for (const auto& r : ptr.replicas()) involved_.insert(r.node());
    involved_.insert(t.begin(), t.end());
    bool done = ptr.replicas_size() == static_cast<int>(t.size() + kept_[b].size());
    for (const auto& node : t) {
      const pb::Replica* r = FindReplica(ptr, node);
      done = done && r != nullptr && r->state() == pb::CLEAN;
    }
    *all_done = *all_done && done;
    targets_[b] = std::move(t);
  }
  return absl::OkStatus();
}

absl::Status RelocationBatch::DropStaleTargets() {
  std::map<std::string, std::vector<pb::ObjectRef>> stale;  // by target node
  for (uint64_t b = first_; b < last_ && b < nblocks_; ++b) {
    const pb::BlockPtr& ptr = PtrOf(b);
    bool source = false;
    for (const auto& r : ptr.replicas()) {
      source = source || (r.state() == pb::CLEAN && live_.count(r.node()));
    }
    for (const auto& t : targets_[b]) {
      const pb::Replica* r = FindReplica(ptr, t);
      if (r == nullptr || r->state() != pb::STALE) continue;
      // A stale copy goes only once there is a clean one to copy from: if
      // the clean replicas are all down, the old data is better than none.
      if (!source) {
        return absl::UnavailableError(
            absl::StrFormat("disk %d block %d: no clean replica is up to copy from", disk_, b));
      }
      for (uint64_t g : OwnObjects(ptr)) stale[t].push_back(ObjectOf(b, g));
    }
  }
  if (stale.empty()) return absl::OkStatus();
  // No write sent before the copy went stale (a late one, from a node that
  // was stopped) may land after the drop.
  std::set<std::string> stale_nodes;
  for (const auto& [t, objects] : stale) stale_nodes.insert(t);
  RETURN_IF_ERROR(ctx_->FenceAll(disk_, spec_.layout_version(), stale_nodes));
  for (const auto& [t, objects] : stale) {
    ASSIGN_OR_RETURN(auto refused,
                     ctx_->peers()->Finish(t, JobHeader(disk_, spec_.layout_version()), objects,
                                           pb::FinishObjectRequest::DROP));
    if (!refused.empty()) {
      return absl::AbortedError(absl::StrFormat(
          "disk %d: %s would not drop its stale copy of block %d", disk_, t, refused[0]));
    }
  }
  return absl::OkStatus();
}

// A: the new replicas join as SYNCING.
absl::Status RelocationBatch::JoinAsSyncing() {
  auto join = [&](pb::BlockChunk* ch) -> absl::StatusOr<bool> {
    bool changed = false;
    for (uint64_t b = first_; b < last_; ++b) {
      pb::BlockPtr* ptr = MutablePtr(ch, b);
      for (const auto& t : targets_[b]) {
        pb::Replica* found = nullptr;
        for (auto& r : *ptr->mutable_replicas()) {
          if (r.node() == t) found = &r;
        }
        if (found == nullptr) {
          found = ptr->add_replicas();
          found->set_node(t);
          found->set_state(pb::SYNCING);
          changed = true;
        } else if (found->state() == pb::STALE) {
          found->set_state(pb::SYNCING);
          changed = true;
        }
      }
    }
    return changed;
  };
  ASSIGN_OR_RETURN(auto v1, ctx_->catalog()->UpdateChunk(disk_, chunk_index_, join));
  layout_v1_ = v1.layout_version();
  return absl::OkStatus();
}

// B: nothing that skips the new replicas is still running anywhere.
absl::Status RelocationBatch::FenceInvolved() {
  RETURN_IF_ERROR(ctx_->FenceAll(disk_, layout_v1_, involved_));
  // The size now: every write that reached only the old replicas did so
  // under a layout no newer than this (a grow may have made more blocks
  // writable since the batch began).
  ASSIGN_OR_RETURN(auto spec, ctx_->catalog()->GetSpec(disk_));
  nblocks_now_ = BlockCount(spec.spec);
  return absl::OkStatus();
}

// C: what each SYNCING target pulls, from the chunk as it is after B.
absl::Status RelocationBatch::ListCopies() {
  ASSIGN_OR_RETURN(auto chunk, ctx_->catalog()->ReadChunk(disk_, chunk_index_));
  if (!chunk) {
    return absl::NotFoundError(absl::StrFormat("disk %d chunk %d is gone", disk_, chunk_index_));
  }
  chunk_ = std::move(chunk->chunk);
  auto site_of = SiteOf();
  for (uint64_t b = first_; b < last_ && b < nblocks_now_; ++b) {
    const pb::BlockPtr& ptr = PtrOf(b);
    for (const auto& r : ptr.replicas()) {
      if (r.state() != pb::SYNCING || !Contains(targets_[b], r.node())) continue;
      std::vector<std::string> sources;
      for (const auto& s : ptr.replicas()) {
        if (s.state() == pb::CLEAN && live_.count(s.node())) sources.push_back(s.node());
      }
      // Same site as the destination first: the copy crosses no link it need not.
      std::stable_partition(sources.begin(), sources.end(),
                            [&](const std::string& s) { return site_of[s] == site_of[r.node()]; });
      if (sources.empty()) {
        return absl::UnavailableError(
            absl::StrFormat("disk %d block %d: no clean replica is up to copy from", disk_, b));
      }
      // Every object of the block: the current one and those snapshots keep.
      for (uint64_t g : OwnObjects(ptr)) pulls_.push_back(Pull{b, g, r.node(), sources, ""});
    }
  }
  return absl::OkStatus();
}

// C: a block its source holds no data of needs no copy: thin stays thin,
// and an unwritten region costs one call per batch, not round trips per
// block. Asked after the fence: what was written before it is on the clean
// replicas, and what is written after it reaches the new ones as well.
void RelocationBatch::SkipEmpty() {
  std::map<std::string, std::set<std::pair<uint64_t, uint64_t>>> held;
  for (const auto& p : pulls_) {
    const std::string& src = p.sources[0];
    if (held.count(src)) continue;
    auto objects =
        ctx_->peers()->Objects(src, JobHeader(disk_, layout_v1_), first_, last_ - first_);
    if (!objects.ok()) continue;  // not known: copy every block
    auto& h = held[src];
    for (const auto& o : *objects) h.emplace(o.block(), o.generation());
  }
  for (size_t i = 0; i < pulls_.size(); ++i) {
    Pull& p = pulls_[i];
    auto h = held.find(p.sources[0]);
    if (h != held.end() && !h->second.count({p.block, p.generation})) {
      p.used = p.sources[0];
    } else {
      to_copy_.push_back(i);
    }
  }
}

// C: several copies at once: one copy leaves both ends waiting on each
// other (a node was idle a third of the time with one at a time).
absl::Status RelocationBatch::PullAll() {
  const size_t width =
      std::min<size_t>(std::max(1u, ctx_->options().parallel_copies), to_copy_.size());
  // Each copy paces its own pages at its share of the job's limit, so
  // copies in flight together never burst past it (the job-wide pace keeps
  // the average across blocks).
  const uint64_t bw = job_->bandwidth_bps();
  const uint64_t per_copy_bps =
      bw == 0 ? 0 : std::max<uint64_t>(1, bw / std::max<size_t>(1, width));
  ParallelFor(ctx_->env().executor, to_copy_.size(), width, [&](size_t k) {
    {
      absl::MutexLock l(&mu_);
      if (!first_error_.ok()) return;
    }
    absl::Status s = PullOne(&pulls_[to_copy_[k]], per_copy_bps);
    if (s.ok()) s = ctx_->CrashPoint("copied");
    if (s.ok()) s = ctx_->CheckStop();  // stays SYNCING
    // A cancel takes effect within a block, even under a low --bandwidth.
    if (s.ok()) s = ctx_->CheckCancel(job_->id());
    absl::MutexLock l(&mu_);
    if (!s.ok() && first_error_.ok()) first_error_ = s;
  });
  absl::MutexLock l(&mu_);
  return first_error_;
}

absl::Status RelocationBatch::PullOne(Pull* pull, uint64_t per_copy_bps) {
  // Sources that failed a copy of this batch go last: one that stopped
  // answering costs one timeout, not one per block.
  std::vector<std::string> sources = pull->sources;
  std::set<std::string> failed;
  {
    absl::MutexLock l(&mu_);
    failed = failed_sources_;
  }
  std::stable_partition(sources.begin(), sources.end(),
                        [&](const std::string& s) { return !failed.count(s); });
  absl::Status error;
  for (const auto& src : sources) {
    auto bytes = ctx_->peers()->Copy(pull->dst, src, JobHeader(disk_, layout_v1_), pull->block,
                                     pull->generation, per_copy_bps);
    if (bytes.ok()) {
      pull->used = src;
      copied_bytes_ += *bytes;
      ctx_->Pace(*bytes);
      return absl::OkStatus();  // an earlier source's failure no longer matters
    }
    error = Annotate(bytes.status(),
                     absl::StrFormat("copying block %d %s -> %s", pull->block, src, pull->dst));
    LOG_WARN("job %s: %s%s", job_->id(), error.ToString(),
             &src == &sources.back() ? "" : "; trying another source");
    absl::MutexLock l(&mu_);
    failed_sources_.insert(src);
  }
  return error;
}

// C: the old replicas hold every flushed write durably; the new ones must
// before they replace them. At once: each waits for its own disk writes.
absl::Status RelocationBatch::SyncTargets() {
  std::set<std::string> set;
  for (const auto& p : pulls_) set.insert(p.dst);
  const std::vector<std::string> targets(set.begin(), set.end());
  std::vector<absl::Status> synced(targets.size());
  ParallelFor(ctx_->env().executor, targets.size(), targets.size(),
              [&](size_t i) { synced[i] = ctx_->peers()->Sync(targets[i]); });
  for (const auto& s : synced) RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

// D: what the switch will owe, written to the job before the switch.
absl::Status RelocationBatch::RecordPending() {
  std::vector<pb::PendingFinish> pending;
  for (uint64_t b = first_; b < last_ && b < nblocks_now_; ++b) {
    const pb::BlockPtr& ptr = PtrOf(b);
    for (const auto& r : ptr.replicas()) {
      const auto& kept = kept_[b];
      if (std::any_of(kept.begin(), kept.end(),
                      [&](const pb::Replica& k) { return k.node() == r.node(); })) {
        continue;  // a repair leaves it alone
      }
      const bool drop = !Contains(targets_[b], r.node());
      if (!drop && r.state() == pb::CLEAN) continue;
      for (uint64_t g : OwnObjects(ptr)) {
        pb::PendingFinish p;
        p.set_block(b);
        p.set_node(r.node());
        p.set_generation(g);
        p.set_drop(drop);
        pending.push_back(p);
      }
    }
  }
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* rec) {
    rec->clear_pending();
    for (const auto& p : pending) *rec->add_pending() = p;
    rec->set_bytes_done(rec->bytes_done() + copied_bytes_.load());
  }));
  return absl::OkStatus();
}

// D: in one chunk update the targets become CLEAN and the rest leave.
absl::Status RelocationBatch::Switch() {
  RETURN_IF_ERROR(
      ctx_->catalog()
          ->UpdateChunk(disk_, chunk_index_, [&](pb::BlockChunk* ch) { return SwitchChunk(ch); })
          .status());
  if (!bad_source_.empty()) {
    return absl::AbortedError(absl::StrFormat("disk %d %s; copying again", disk_, bad_source_));
  }
  return absl::OkStatus();
}

// A source that went stale after the chunk was read (a write failed on it
// and the client marked it) may lack an acknowledged write, and so may the
// copies made from it: they go stale too, and the batch starts over.
bool RelocationBatch::SourceWentStale(pb::BlockChunk* ch) {
  std::map<uint64_t, std::set<std::string>> sources_of;
  for (const auto& p : pulls_) sources_of[p.block].insert(p.used);
  bad_source_.clear();
  for (uint64_t b = first_; b < last_; ++b) {
    pb::BlockPtr* ptr = MutablePtr(ch, b);
    for (const auto& src : sources_of[b]) {
      const pb::Replica* r = FindReplica(*ptr, src);
      if (r != nullptr && r->state() == pb::CLEAN) continue;
      bad_source_ = absl::StrFormat("block %d: source %s went stale during the copy", b, src);
      for (auto& t : *ptr->mutable_replicas()) {
        if (t.state() == pb::SYNCING) t.set_state(pb::STALE);
      }
    }
  }
  return !bad_source_.empty();
}

absl::StatusOr<bool> RelocationBatch::SwitchChunk(pb::BlockChunk* ch) {
  if (SourceWentStale(ch)) return true;
  for (uint64_t b = first_; b < last_; ++b) {
    pb::BlockPtr* ptr = MutablePtr(ch, b);
    pb::BlockPtr next = *ptr;  // its objects as they are; only the replicas change
    next.clear_replicas();
    for (const auto& t : targets_[b]) {
      const pb::Replica* r = FindReplica(*ptr, t);
      if (r == nullptr || r->state() == pb::STALE) {
        return absl::AbortedError(absl::StrFormat(
            "disk %d block %d: replica %s went stale during the copy; copying again", disk_, b, t));
      }
      pb::Replica* add = next.add_replicas();
      add->set_node(t);
      add->set_state(pb::CLEAN);
    }
    for (const auto& k : kept_[b]) {  // as they are now, not as they were read
      const pb::Replica* r = FindReplica(*ptr, k.node());
      if (r != nullptr) *next.add_replicas() = *r;
    }
    *ptr = next;
  }
  return true;
}

}  // namespace ukai::control
