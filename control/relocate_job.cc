#include "node/relocator.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/generations.h"
#include "meta/layout.h"

namespace ukai::node {
namespace {

using meta::kChunkBlocks;
using meta::OwnObjects;

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

const pb::Replica* Find(const pb::BlockPtr& ptr, const std::string& node) {
  for (const auto& r : ptr.replicas()) {
    if (r.node() == node) return &r;
  }
  return nullptr;
}

pb::IoHeader Hdr(uint64_t disk, uint64_t layout) {
  pb::IoHeader h;
  h.set_disk_id(disk);
  h.set_layout_version(layout);
  return h;
}

pb::ObjectRef Ref(uint64_t block, uint64_t generation) {
  pb::ObjectRef r;
  r.set_block(block);
  r.set_generation(generation);
  return r;
}

uint64_t BlockCount(const pb::DiskSpec& spec) {
  return (spec.size() + spec.block_size() - 1) / spec.block_size();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RelocationTargets(const pb::BlockPtr& ptr,
                                                           const pb::Placement& target,
                                                           const std::vector<pb::NodeInfo>& nodes,
                                                           const std::set<std::string>& live,
                                                           uint64_t seed) {
  const size_t want = target.replicas();
  std::vector<std::string> candidates;
  if (!target.nodes().empty()) {
    candidates.assign(target.nodes().begin(), target.nodes().end());
  } else {
    std::set<std::string> sites(target.sites().begin(), target.sites().end());
    for (const auto& n : nodes) {
      if (sites.count(n.site())) candidates.push_back(n.id());
    }
    std::sort(candidates.begin(), candidates.end());
    if (!candidates.empty()) {  // spread blocks over the sites' nodes
      std::rotate(candidates.begin(), candidates.begin() + static_cast<long>(seed % candidates.size()),
                  candidates.end());
    }
  }
  std::vector<std::string> out;
  // Replicas already in place stay (a resumed job finds its SYNCING ones here).
  for (const auto& r : ptr.replicas()) {
    if (out.size() < want && r.state() != pb::STALE && Contains(candidates, r.node())) {
      out.push_back(r.node());
    }
  }
  for (const auto& c : candidates) {
    if (out.size() >= want) break;
    if (!Contains(out, c) && live.count(c)) out.push_back(c);
  }
  if (out.size() < want) {
    return absl::UnavailableError(absl::StrFormat(
        "%d replicas wanted, but only %d target nodes are up (%s)", want, out.size(),
        absl::StrJoin(candidates, ",")));
  }
  return out;
}

RepairPlan PlanRepair(const pb::BlockPtr& ptr, const RepairScope& scope, uint64_t seed) {
  RepairPlan plan;
  const bool source = std::any_of(ptr.replicas().begin(), ptr.replicas().end(), [&](const pb::Replica& r) {
    return r.state() == pb::CLEAN && scope.live.count(r.node());
  });
  if (!source) {  // the block waits for a clean replica to come back
    plan.kept.assign(ptr.replicas().begin(), ptr.replicas().end());
    return plan;
  }
  std::map<std::string, std::string> site_of;
  for (const auto& n : scope.nodes) site_of[n.id()] = n.site();
  std::vector<std::string> candidates;  // live, not leaving, holding none of the block
  for (const auto& n : scope.nodes) {
    if (scope.live.count(n.id()) && !scope.replace.count(n.id()) && Find(ptr, n.id()) == nullptr) {
      candidates.push_back(n.id());
    }
  }
  if (!candidates.empty()) {
    std::rotate(candidates.begin(), candidates.begin() + static_cast<long>(seed % candidates.size()),
                candidates.end());
  }
  const std::set<std::string> sites(scope.placement.sites().begin(), scope.placement.sites().end());
  const bool any_site = sites.empty() && scope.placement.nodes().empty();
  for (const auto& r : ptr.replicas()) {
    if (!scope.replace.count(r.node())) {
      if (scope.live.count(r.node())) {
        plan.targets.push_back(r.node());
      } else {
        plan.kept.push_back(r);
      }
      continue;
    }
    const std::string& lost_site = site_of[r.node()];
    auto pick = std::find_if(candidates.begin(), candidates.end(), [&](const std::string& c) {
      return site_of[c] == lost_site;
    });
    if (pick == candidates.end()) {
      pick = std::find_if(candidates.begin(), candidates.end(), [&](const std::string& c) {
        return any_site || sites.count(site_of[c]);
      });
    }
    if (pick == candidates.end()) {
      plan.kept.push_back(r);  // nowhere to go yet
      continue;
    }
    plan.targets.push_back(*pick);
    candidates.erase(pick);
  }
  plan.work = plan.targets.size() + plan.kept.size() != static_cast<size_t>(ptr.replicas_size());
  for (const auto& t : plan.targets) {
    const pb::Replica* r = Find(ptr, t);
    plan.work = plan.work || r == nullptr || r->state() != pb::CLEAN;
  }
  return plan;
}

namespace {
// A repair job's scope, as of now.
RepairScope ScopeOf(const pb::JobRecord& job, const pb::DiskSpec& spec,
                    const std::vector<pb::NodeInfo>& nodes, const std::set<std::string>& live) {
  RepairScope scope;
  scope.live = live;
  scope.replace.insert(job.replace_nodes().begin(), job.replace_nodes().end());
  scope.nodes = nodes;
  scope.placement = spec.placement();
  return scope;
}
}  // namespace

absl::Status Relocator::Run(const std::string& id, const std::function<bool()>& stop) {
  ASSIGN_OR_RETURN(auto vj, catalog_->GetJob(id));
  pb::JobRecord job = std::move(vj.job);
  if (job.state() != pb::JobRecord::RUNNING) return absl::OkStatus();
  stop_ = stop;
  pace_ = std::make_unique<RateLimiter>(job.bandwidth_bps());
  absl::Status s = job.kind() == pb::JobRecord::SCRUB     ? RunScrub(&job)
                   : job.kind() == pb::JobRecord::FLATTEN ? RunFlatten(&job)
                                                          : RunJob(&job);
  if (s.ok() || absl::IsAborted(s)) return s;
  std::string why = absl::IsNotFound(s) ? "the disk was deleted" : std::string(s.message());
  LOG_WARN("job %s: failed: %s", id, why);
  auto f = catalog_->FinishJob(id, pb::JobRecord::FAILED, why);
  return f.ok() ? absl::OkStatus() : f.status();
}

absl::Status Relocator::Crashed(const std::string& point) {
  crashed_ = true;
  return absl::AbortedError("runner stopped at " + point);
}

absl::Status Relocator::CheckCancel(const std::string& id) {
  ASSIGN_OR_RETURN(auto cur, catalog_->GetJob(id));
  if (!cur.job.cancel_requested()) return absl::OkStatus();
  cancel_seen_ = true;
  return absl::CancelledError("cancel requested");
}

absl::Status Relocator::EstimateTotals(pb::JobRecord* job, const std::map<uint64_t, pb::BlockChunk>& chunks,
                                       const pb::DiskSpec& spec) {
  const uint64_t disk = job->disk_id();
  const uint64_t nblocks = BlockCount(spec);
  uint64_t blocks = 0;
  for (const auto& [c, chunk] : chunks) {
    blocks += std::min<uint64_t>(kChunkBlocks, nblocks > c * kChunkBlocks ? nblocks - c * kChunkBlocks : 0);
  }
  if (job->kind() == pb::JobRecord::REPAIR) {
    // At most a block per replica to fill (only its stored pages travel).
    ASSIGN_OR_RETURN(auto nodes, catalog_->ListNodes());
    ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
    const RepairScope scope = ScopeOf(*job, spec, nodes, live);
    uint64_t stale = 0;
    for (const auto& [c, chunk] : chunks) {
      for (int i = 0; i < chunk.blocks_size() && c * kChunkBlocks + i < nblocks; ++i) {
        const pb::BlockPtr& ptr = chunk.blocks(i);
        for (const auto& t : PlanRepair(ptr, scope, c * kChunkBlocks + i).targets) {
          const pb::Replica* r = Find(ptr, t);
          stale += r == nullptr || r->state() != pb::CLEAN;
        }
      }
    }
    ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(job->id(), [&](pb::JobRecord* r) {
      r->set_bytes_total(stale * spec.block_size());
      r->set_blocks_total(blocks);
    }));
    return absl::OkStatus();
  }
  // Stored bytes per replica, times the replicas a block gains.
  uint64_t stored = 0;
  ASSIGN_OR_RETURN(auto nodes, catalog_->ListNodes());
  for (const auto& n : nodes) {
    auto b = nodes_->StoredBytes(n.id(), disk);
    if (b.ok()) stored += *b;
  }
  uint64_t gained = job->target().replicas();
  if (!chunks.empty() && chunks.begin()->second.blocks_size() > 0) {
    const auto& ptr = chunks.begin()->second.blocks(0);
    gained = 0;
    for (const auto& n : job->target().nodes()) gained += Find(ptr, n) == nullptr;
    if (job->target().nodes().empty()) {
      std::set<std::string> sites(job->target().sites().begin(), job->target().sites().end());
      std::map<std::string, std::string> site_of;
      for (const auto& n : nodes) site_of[n.id()] = n.site();
      uint64_t there = 0;
      for (const auto& r : ptr.replicas()) there += sites.count(site_of[r.node()]) > 0;
      gained = job->target().replicas() > there ? job->target().replicas() - there : 0;
    }
  }
  const uint64_t replicas = std::max<uint32_t>(1, spec.placement().replicas());
  ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(job->id(), [&](pb::JobRecord* r) {
    r->set_bytes_total(stored / replicas * gained);
    r->set_blocks_total(blocks);
  }));
  return absl::OkStatus();
}

absl::Status Relocator::RunJob(pb::JobRecord* job) {
  const std::string id = job->id();
  const uint64_t disk = job->disk_id();
  ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) { r->set_runner(self_); }));
  LOG_INFO("job %s: %s disk %s (%d) from block %d", id,
           job->kind() == pb::JobRecord::REPAIR ? "repairing" : "relocating", job->disk_name(), disk,
           job->next_block());
  if (Crash("start")) return Crashed("start");

  absl::Duration backoff = opts_.retry_min;
  auto retry = [&](const absl::Status& s) {
    LOG_WARN("job %s: %s; retrying in %s", id, s.ToString(), absl::FormatDuration(backoff));
    auto u = catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
      r->set_error("retrying: " + std::string(s.message()));
    });
    if (u.ok()) job->set_error(u->error());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, opts_.retry_max);
  };

  // Whatever a dead runner owed first.
  while (true) {
    if (stop_()) return absl::AbortedError("stopping");
    absl::Status s = FinishPending(job);
    if (s.ok()) break;
    if (absl::IsAborted(s) || absl::IsNotFound(s)) return s;
    retry(s);
  }

  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(disk));
  ASSIGN_OR_RETURN(auto spec, catalog_->GetSpec(disk));
  const uint64_t nblocks = BlockCount(spec.spec);
  if (job->blocks_done() == 0 && job->bytes_total() == 0) {
    RETURN_IF_ERROR(EstimateTotals(job, chunks, spec.spec));
  }

  // An unwritten region moves by pointer updates alone, about as costly for
  // 1024 blocks as for 32: after a batch with nothing to copy the next one is
  // four times bigger (up to a chunk), and back to small once data shows up.
  uint64_t batch = opts_.batch_blocks;
  for (const auto& [c, chunk] : chunks) {
    // Blocks past the disk's end when the job started hold no data; they
    // stay where they are (docs/ARCHITECTURE.md, known limits).
    // A repair walks whole chunks: pointers past the end hold no data, but a
    // grow would make them writable, and they must not keep a drained node.
    const uint64_t chunk_end = job->kind() == pb::JobRecord::REPAIR
                                   ? (c + 1) * kChunkBlocks
                                   : std::min<uint64_t>((c + 1) * kChunkBlocks, nblocks);
    for (uint64_t first = std::max(c * kChunkBlocks, job->next_block()); first < chunk_end;) {
      const uint64_t n = std::min<uint64_t>(batch, chunk_end - first);
      bool copied = false;
      backoff = opts_.retry_min;
      while (true) {
        if (stop_()) return absl::AbortedError("stopping");
        absl::Status s = CheckCancel(id);
        if (s.ok()) s = MoveBatch(job, c, first, n, &copied);
        if (s.ok()) break;
        if (crashed_ || absl::IsNotFound(s)) return s;
        if (cancel_seen_) return Cancel(job, c, first, n);
        retry(s);
      }
      first += n;
      batch = copied ? opts_.batch_blocks
                     : std::min<uint64_t>(batch * 4, std::max<uint64_t>(kChunkBlocks, opts_.batch_blocks));
    }
  }
  ASSIGN_OR_RETURN(auto done, catalog_->FinishJob(id, pb::JobRecord::DONE, ""));
  LOG_INFO("job %s: done, %d bytes copied", id, done.bytes_done());
  return absl::OkStatus();
}

absl::Status Relocator::FenceAll(uint64_t disk, uint64_t layout,
                                 const std::set<std::string>& nodes) {
  ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
  for (const auto& n : nodes) {
    // A node that is down serves nothing; it reads the current layout
    // before it serves again.
    if (!live.count(n)) continue;
    absl::Status s = nodes_->Fence(n, disk, layout);
    if (!s.ok()) return Annotate(s, "fencing " + n);
  }
  return absl::OkStatus();
}

absl::Status Relocator::MoveBatch(pb::JobRecord* job, uint64_t c, uint64_t first, uint64_t n,
                                  bool* copied_any) {
  *copied_any = false;
  const uint64_t disk = job->disk_id();
  const uint64_t last = first + n;  // exclusive
  ASSIGN_OR_RETURN(auto spec, catalog_->GetSpec(disk));
  const uint64_t nblocks = BlockCount(spec.spec);
  ASSIGN_OR_RETURN(auto nodes, catalog_->ListNodes());
  ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
  ASSIGN_OR_RETURN(auto chunk, catalog_->ReadChunk(disk, c));
  if (!chunk) return absl::NotFoundError(absl::StrFormat("disk %d chunk %d is gone", disk, c));
  auto ptr_of = [&](const pb::BlockChunk& ch, uint64_t b) -> const pb::BlockPtr& {
    return ch.blocks(static_cast<int>(b - c * kChunkBlocks));
  };

  // targets[b]: the replicas block b ends with, CLEAN; kept[b]: those a
  // repair leaves as they are (on nodes that are down).
  const bool repair = job->kind() == pb::JobRecord::REPAIR;
  const RepairScope scope = ScopeOf(*job, spec.spec, nodes, live);
  std::map<uint64_t, std::vector<std::string>> targets;
  std::map<uint64_t, std::vector<pb::Replica>> kept;
  std::set<std::string> involved;
  bool all_done = true;
  for (uint64_t b = first; b < last; ++b) {
    const pb::BlockPtr& ptr = ptr_of(chunk->chunk, b);
    std::vector<std::string> t;
    if (repair) {
      RepairPlan plan = PlanRepair(ptr, scope, b);
      t = std::move(plan.targets);
      kept[b] = std::move(plan.kept);
    } else {
      ASSIGN_OR_RETURN(t, RelocationTargets(ptr, job->target(), nodes, live, b));
    }
    for (const auto& r : ptr.replicas()) involved.insert(r.node());
    involved.insert(t.begin(), t.end());
    bool done = ptr.replicas_size() == static_cast<int>(t.size() + kept[b].size());
    for (const auto& node : t) {
      const pb::Replica* r = Find(ptr, node);
      done = done && r != nullptr && r->state() == pb::CLEAN;
    }
    all_done = all_done && done;
    targets[b] = std::move(t);
  }
  if (all_done) return absl::OkStatus();  // moved by an earlier run

  // A target that holds a stale copy starts over from nothing.
  std::map<std::string, std::vector<pb::ObjectRef>> stale_targets;
  for (uint64_t b = first; b < last && b < nblocks; ++b) {
    const pb::BlockPtr& ptr = ptr_of(chunk->chunk, b);
    for (const auto& t : targets[b]) {
      const pb::Replica* r = Find(ptr, t);
      if (r == nullptr || r->state() != pb::STALE) continue;
      for (uint64_t g : OwnObjects(ptr)) stale_targets[t].push_back(Ref(b, g));
    }
  }
  if (!stale_targets.empty()) {
    // A stale copy goes only once there is a clean one to copy from: if the
    // clean replicas are all down, the old data is better than none.
    for (uint64_t b = first; b < last && b < nblocks; ++b) {
      const pb::BlockPtr& ptr = ptr_of(chunk->chunk, b);
      bool needs = false, source = false;
      for (const auto& r : ptr.replicas()) {
        needs = needs || (r.state() == pb::STALE && Contains(targets[b], r.node()));
        source = source || (r.state() == pb::CLEAN && live.count(r.node()));
      }
      if (needs && !source) {
        return absl::UnavailableError(
            absl::StrFormat("disk %d block %d: no clean replica is up to copy from", disk, b));
      }
    }
    // No write sent before the copy went stale (a late one, from a node that
    // was stopped) may land after the drop.
    std::set<std::string> stale_nodes;
    for (const auto& [t, objects] : stale_targets) stale_nodes.insert(t);
    RETURN_IF_ERROR(FenceAll(disk, spec.spec.layout_version(), stale_nodes));
  }
  for (const auto& [t, objects] : stale_targets) {
    ASSIGN_OR_RETURN(auto refused, nodes_->Finish(t, Hdr(disk, spec.spec.layout_version()), objects,
                                                  pb::FinishObjectRequest::DROP));
    if (!refused.empty()) {
      return absl::AbortedError(absl::StrFormat("disk %d: %s would not drop its stale copy of block %d",
                                                disk, t, refused[0]));
    }
  }
  if (Crash("before-syncing")) return Crashed("before-syncing");

  // A: the new replicas join as SYNCING.
  ASSIGN_OR_RETURN(auto v1, catalog_->UpdateChunk(disk, c, [&](pb::BlockChunk* ch) -> absl::StatusOr<bool> {
    bool changed = false;
    for (uint64_t b = first; b < last; ++b) {
      pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(b - c * kChunkBlocks));
      for (const auto& t : targets[b]) {
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
  }));
  if (Crash("syncing")) return Crashed("syncing");

  // B: nothing that skips the new replicas is still running anywhere.
  RETURN_IF_ERROR(FenceAll(disk, v1.layout_version(), involved));
  if (Crash("fenced")) return Crashed("fenced");
  // The size now: every write that reached only the old replicas did so
  // under a layout no newer than this (a grow may have made more blocks
  // writable since the batch began).
  ASSIGN_OR_RETURN(spec, catalog_->GetSpec(disk));
  const uint64_t nblocks_now = BlockCount(spec.spec);

  // C: pull.
  ASSIGN_OR_RETURN(chunk, catalog_->ReadChunk(disk, c));
  if (!chunk) return absl::NotFoundError(absl::StrFormat("disk %d chunk %d is gone", disk, c));
  std::map<std::string, std::string> site_of;
  for (const auto& node : nodes) site_of[node.id()] = node.site();
  struct Task {
    uint64_t block, generation;
    std::string dst;
    std::vector<std::string> sources;
  };
  std::vector<Task> tasks;
  for (uint64_t b = first; b < last && b < nblocks_now; ++b) {
    const pb::BlockPtr& ptr = ptr_of(chunk->chunk, b);
    for (const auto& r : ptr.replicas()) {
      if (r.state() != pb::SYNCING || !Contains(targets[b], r.node())) continue;
      std::vector<std::string> sources;
      for (const auto& s : ptr.replicas()) {
        if (s.state() == pb::CLEAN && live.count(s.node())) sources.push_back(s.node());
      }
      // Same site as the destination first: the copy crosses no link it need not.
      std::stable_partition(sources.begin(), sources.end(), [&](const std::string& s) {
        return site_of[s] == site_of[r.node()];
      });
      if (sources.empty()) {
        return absl::UnavailableError(
            absl::StrFormat("disk %d block %d: no clean replica is up to copy from", disk, b));
      }
      // Every object of the block: the current one and those snapshots keep.
      for (uint64_t g : OwnObjects(ptr)) tasks.push_back(Task{b, g, r.node(), sources});
    }
  }
  // A block its source holds no data of needs no copy: thin stays thin, and
  // an unwritten region costs one call per batch, not round trips per block.
  // Asked after the fence: what was written before it is on the clean
  // replicas, and what is written after it reaches the new ones as well.
  std::map<std::string, std::set<std::pair<uint64_t, uint64_t>>> held;
  for (const auto& t : tasks) {
    const std::string& src = t.sources[0];
    if (held.count(src)) continue;
    auto objects = nodes_->Objects(src, Hdr(disk, v1.layout_version()), first, last - first);
    if (!objects.ok()) continue;  // not known: copy every block
    auto& h = held[src];
    for (const auto& o : *objects) h.emplace(o.block(), o.generation());
  }
  std::vector<std::string> used(tasks.size());  // the source each block came from
  std::vector<size_t> copies;                  // the tasks with data to copy
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Task& t = tasks[i];
    auto h = held.find(t.sources[0]);
    if (h != held.end() && !h->second.count({t.block, t.generation})) {
      used[i] = t.sources[0];
    } else {
      copies.push_back(i);
    }
  }
  *copied_any = !copies.empty();
  // Several copies at once: one copy leaves both ends waiting on each other
  // (a node was idle a third of the time with one at a time).
  std::atomic<uint64_t> copied{0};
  std::atomic<size_t> next{0};
  absl::Mutex mu;
  absl::Status result;  // the first thing that stops the batch
  std::set<std::string> failed_sources;  // guarded by mu
  const size_t n_workers = std::min<size_t>(std::max(1u, opts_.parallel_copies), copies.size());
  // Each copy paces its own pages at its share of the job's limit, so copies
  // in flight together never burst past it (the job-wide pace_ keeps the
  // average across blocks).
  const uint64_t per_copy_bps =
      job->bandwidth_bps() == 0 ? 0 : std::max<uint64_t>(1, job->bandwidth_bps() / std::max<size_t>(1, n_workers));
  auto worker = [&] {
    while (true) {
      {
        absl::MutexLock l(&mu);
        if (!result.ok()) return;
      }
      const size_t k = next++;
      if (k >= copies.size()) return;
      const size_t i = copies[k];
      const Task& t = tasks[i];
      absl::Status error;
      bool ok = false;
      // Sources that failed a copy of this batch go last: one that stopped
      // answering costs one timeout, not one per block.
      std::vector<std::string> sources = t.sources;
      {
        absl::MutexLock l(&mu);
        std::stable_partition(sources.begin(), sources.end(),
                              [&](const std::string& s) { return !failed_sources.count(s); });
      }
      for (const auto& src : sources) {
        auto bytes = nodes_->Copy(t.dst, src, Hdr(disk, v1.layout_version()), t.block,
                                  t.generation, per_copy_bps);
        if (bytes.ok()) {
          used[i] = src;
          copied += *bytes;
          pace_->Acquire(*bytes);
          ok = true;
          error = absl::OkStatus();  // an earlier source's failure no longer matters
          break;
        }
        error = Annotate(bytes.status(),
                         absl::StrFormat("copying block %d %s -> %s", t.block, src, t.dst));
        LOG_WARN("job %s: %s%s", job->id(), error.ToString(),
                 &src == &sources.back() ? "" : "; trying another source");
        absl::MutexLock l(&mu);
        failed_sources.insert(src);
      }
      if (ok && Crash("copied")) error = Crashed("copied");
      if (ok && error.ok() && stop_()) error = absl::AbortedError("stopping");  // stays SYNCING
      // A cancel takes effect within a block, even under a low --bandwidth.
      if (ok && error.ok()) error = CheckCancel(job->id());
      if (!error.ok()) {
        absl::MutexLock l(&mu);
        if (result.ok()) result = error;
        return;
      }
    }
  };
  std::vector<std::thread> workers;
  for (size_t i = 1; i < n_workers; ++i) workers.emplace_back(worker);
  worker();
  for (auto& t : workers) t.join();
  RETURN_IF_ERROR(result);
  // The old replicas hold every flushed write durably; the new ones must
  // before they replace them.
  std::set<std::string> destinations;
  for (const auto& t : tasks) destinations.insert(t.dst);
  {  // at once: each waits for its own disk writes
    std::vector<absl::Status> synced(destinations.size());
    std::vector<std::thread> syncs;
    size_t i = 0;
    for (const auto& d : destinations) {
      syncs.emplace_back([&, d, i] { synced[i] = nodes_->Sync(d); });
      ++i;
    }
    for (auto& t : syncs) t.join();
    for (const auto& s : synced) RETURN_IF_ERROR(s);
  }

  // A cancel that came during the copy takes this batch back, not forward.
  RETURN_IF_ERROR(CheckCancel(job->id()));

  // D: what the switch will owe, then the switch.
  std::vector<pb::PendingFinish> pending;
  for (uint64_t b = first; b < last && b < nblocks_now; ++b) {
    const pb::BlockPtr& ptr = ptr_of(chunk->chunk, b);
    for (const auto& r : ptr.replicas()) {
      if (std::any_of(kept[b].begin(), kept[b].end(),
                      [&](const pb::Replica& k) { return k.node() == r.node(); })) {
        continue;  // a repair leaves it alone
      }
      const bool drop = !Contains(targets[b], r.node());
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
  ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(job->id(), [&](pb::JobRecord* rec) {
    rec->clear_pending();
    for (const auto& p : pending) *rec->add_pending() = p;
    rec->set_bytes_done(rec->bytes_done() + copied.load());
  }));
  if (Crash("pending")) return Crashed("pending");
  // A source that went stale after the chunk was read (a write failed on
  // it and the client marked it) may lack an acknowledged write, and so may
  // the copies made from it: they go stale too, and the batch starts over.
  std::map<uint64_t, std::set<std::string>> sources_of;
  for (size_t i = 0; i < tasks.size(); ++i) sources_of[tasks[i].block].insert(used[i]);
  std::string bad_source;
  RETURN_IF_ERROR(catalog_->UpdateChunk(disk, c, [&](pb::BlockChunk* ch) -> absl::StatusOr<bool> {
    bad_source.clear();
    for (uint64_t b = first; b < last; ++b) {
      pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(b - c * kChunkBlocks));
      for (const auto& src : sources_of[b]) {
        const pb::Replica* r = Find(*ptr, src);
        if (r != nullptr && r->state() == pb::CLEAN) continue;
        bad_source = absl::StrFormat("block %d: source %s went stale during the copy", b, src);
        for (auto& t : *ptr->mutable_replicas()) {
          if (t.state() == pb::SYNCING) t.set_state(pb::STALE);
        }
      }
    }
    if (!bad_source.empty()) return true;
    for (uint64_t b = first; b < last; ++b) {
      pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(b - c * kChunkBlocks));
      pb::BlockPtr next = *ptr;  // its objects as they are; only the replicas change
      next.clear_replicas();
      for (const auto& t : targets[b]) {
        const pb::Replica* r = Find(*ptr, t);
        if (r == nullptr || r->state() == pb::STALE) {
          return absl::AbortedError(absl::StrFormat(
              "disk %d block %d: replica %s went stale during the copy; copying again", disk, b, t));
        }
        pb::Replica* add = next.add_replicas();
        add->set_node(t);
        add->set_state(pb::CLEAN);
      }
      for (const auto& k : kept[b]) {  // as they are now, not as they were read
        const pb::Replica* r = Find(*ptr, k.node());
        if (r != nullptr) *next.add_replicas() = *r;
      }
      *ptr = next;
    }
    return true;
  }).status());
  if (!bad_source.empty()) {
    return absl::AbortedError(absl::StrFormat("disk %d %s; copying again", disk, bad_source));
  }
  if (Crash("switched")) return Crashed("switched");

  // E and F.
  RETURN_IF_ERROR(FinishPending(job));
  ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(job->id(), [&](pb::JobRecord* rec) {
    rec->set_next_block(last);
    rec->set_blocks_done(rec->blocks_done() + n);
    rec->set_error("");
  }));
  return absl::OkStatus();
}

absl::Status Relocator::FinishPending(pb::JobRecord* job) {
  if (job->pending().empty()) return absl::OkStatus();
  const uint64_t disk = job->disk_id();
  ASSIGN_OR_RETURN(auto spec, catalog_->GetSpec(disk));
  std::set<std::string> involved;
  for (const auto& p : job->pending()) involved.insert(p.node());
  // E: no request under the layout before the switch is left on them.
  RETURN_IF_ERROR(FenceAll(disk, spec.spec.layout_version(), involved));
  if (Crash("fenced-after-switch")) return Crashed("fenced-after-switch");
  ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
  // One call per node and kind. A refused object is one whose switch never
  // happened (a runner died before it): the node keeps it and the batch runs again.
  std::map<std::pair<std::string, bool>, std::vector<pb::ObjectRef>> groups;
  for (const auto& p : job->pending()) {
    if (!live.count(p.node())) {
      LOG_WARN("job %s: %s is down; its copy of disk %d block %d stays until it is dropped",
               job->id(), p.node(), disk, p.block());
      continue;
    }
    groups[{p.node(), p.drop()}].push_back(Ref(p.block(), p.generation()));
  }
  for (const auto& [key, objects] : groups) {
    auto refused = nodes_->Finish(
        key.first, Hdr(disk, spec.spec.layout_version()), objects,
        key.second ? pb::FinishObjectRequest::DROP : pb::FinishObjectRequest::CLEAR_MARKS);
    if (!refused.ok()) return Annotate(refused.status(), "finishing the batch on " + key.first);
  }
  if (Crash("finished")) return Crashed("finished");
  ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(job->id(), [](pb::JobRecord* r) { r->clear_pending(); }));
  return absl::OkStatus();
}

absl::Status Relocator::Cancel(pb::JobRecord* job, uint64_t c, uint64_t first, uint64_t n) {
  const uint64_t disk = job->disk_id();
  std::vector<std::pair<uint64_t, pb::Replica>> removed;
  std::map<uint64_t, std::vector<uint64_t>> objects_of;
  ASSIGN_OR_RETURN(auto spec, catalog_->UpdateChunk(disk, c, [&](pb::BlockChunk* ch) -> absl::StatusOr<bool> {
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
  }));
  std::set<std::string> nodes;
  for (const auto& [b, r] : removed) nodes.insert(r.node());
  RETURN_IF_ERROR(FenceAll(disk, spec.layout_version(), nodes));
  std::map<std::string, std::vector<pb::ObjectRef>> partial;
  for (const auto& [b, r] : removed) {
    for (uint64_t g : objects_of[b]) partial[r.node()].push_back(Ref(b, g));
  }
  for (const auto& [node, objects] : partial) {
    auto s = nodes_->Finish(node, Hdr(disk, spec.layout_version()), objects,
                            pb::FinishObjectRequest::DROP);
    if (!s.ok()) LOG_WARN("job %s: dropping the partial copy on %s: %s", job->id(), node, s.status().ToString());
  }
  RETURN_IF_ERROR(catalog_->SetPlacement(disk, job->previous()).status());
  ASSIGN_OR_RETURN(*job, catalog_->FinishJob(job->id(), pb::JobRecord::CANCELLED, ""));
  LOG_INFO("job %s: cancelled; blocks before %d moved, the rest stay", job->id(), first);
  return absl::OkStatus();
}

}  // namespace ukai::node
