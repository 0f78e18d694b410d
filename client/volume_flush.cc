// VolumeImpl, flush: every replica written since the last flush makes its
// writes durable; one that cannot is marked stale (or, under a waiting
// failure policy, the flush is held).
#include <optional>
#include <set>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/volume_impl.h"
#include "client/volume_rules.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_client.h"
#include "common/wire_format.h"
#include "meta/failure_policy.h"

namespace ukai::client {

absl::Status VolumeImpl::MarkStale(uint64_t block, const std::vector<std::string>& nodes) {
  for (const auto& n : nodes) {
    auto spec = catalog_->MarkStale(id_, block, n);
    if (!spec.ok()) return Annotate(spec.status(), "marking replica " + n + " stale");
  }
  return RefreshLayout(/*arm_watch=*/false);
}

std::set<std::string> VolumeImpl::FlushNodes(const std::set<std::string>& nodes,
                                             absl::Time deadline) {
  std::deque<NodeCall> calls;
  std::set<std::string> failed;
  for (const auto& node : nodes) {
    auto io = pool_->Io(node);
    if (io.ok()) {
      calls.push_back(NodeCall{node, *io, {}});
      calls.back().call.method = wire::kFlush;
    } else {
      failed.insert(node);
    }
  }
  wire::WireWaiter waiter;
  for (auto& nc : calls) nc.io->Start(&nc.call, &waiter);
  waiter.WaitAll(deadline);
  for (auto& nc : calls) {
    if (!nc.call.status.ok()) {
      LOG_WARN("disk %d: flush on %s: %s", id_, nc.node, nc.call.status.ToString());
      failed.insert(nc.node);
    }
  }
  return failed;
}

// A replica that could not flush may lose writes it acknowledged. Where each
// block it was written still has the replicas the policy needs durable
// elsewhere, it is marked stale for those blocks and the flush succeeds.
// Otherwise the flush is held (the failed nodes asked again) for the
// policy's hold time; then the failed replica is marked stale where some
// other replica is durable, the blocks with none stay dirty for a later
// flush, and the flush fails (EIO).
absl::Status VolumeImpl::Flush() {
  std::map<std::string, std::set<uint64_t>> dirty;
  {
    absl::MutexLock l(&mu_);
    dirty.swap(dirty_);
  }
  if (dirty.empty()) return absl::OkStatus();
  std::set<std::string> pending;
  for (const auto& [node, blocks] : dirty) pending.insert(node);
  const absl::Time began = absl::Now();
  std::optional<Hold> hold;
  for (;;) {
    const std::set<std::string> failed =
        FlushNodes(pending, hold ? hold->Deadline(opts_->rpc_timeout_ms * 2)
                                 : Deadline(opts_->rpc_timeout_ms * 2));
    if (failed.empty()) return absl::OkStatus();
    const IoPolicy p = Policy();
    struct Miss {
      uint64_t block;
      std::string node;
      uint32_t durable_clean;  // CLEAN replicas that did not fail
    };
    std::vector<Miss> misses;
    absl::Status short_of = absl::OkStatus();
    for (const auto& node : failed) {
      for (uint64_t block : dirty[node]) {
        auto ref = GetBlock(block, false);
        if (!ref.ok()) {  // ZooKeeper away: try again on the next flush
          absl::MutexLock l(&mu_);
          for (const auto& n : failed) dirty_[n].insert(dirty[n].begin(), dirty[n].end());
          return ref.status();
        }
        // As for a write: SYNCING replicas count toward the policy's
        // number, but one CLEAN replica must be durable.
        uint32_t durable = 0, durable_clean = 0;
        for (const auto& r : ref->ptr().replicas()) {
          if (r.state() == pb::STALE || failed.count(r.node())) continue;
          ++durable;
          durable_clean += r.state() == pb::CLEAN;
        }
        misses.push_back({block, node, durable_clean});
        if ((durable < Needed(p, *ref) || durable_clean == 0) && short_of.ok()) {
          short_of = absl::UnavailableError(absl::StrFormat(
              "disk %d block %d: flush failed on %s, %d other replica(s) durable (%d clean), "
              "the policy needs %d and one clean",
              id_, block, node, durable, durable_clean, Needed(p, *ref)));
        }
      }
    }
    if (!short_of.ok()) {
      if (!hold) {
        LOG_WARN("%s; holding the flush up to %d ms", short_of.ToString(), meta::HoldMs(p.failure));
        hold.emplace(began, meta::HoldMs(p.failure));
      }
      if (hold->Wait()) {
        pending = failed;
        (void)RefreshLayout(/*arm_watch=*/false);
        continue;
      }
    }
    for (const Miss& m : misses) {
      if (m.durable_clean == 0) {  // its last whole copy: keep it dirty, mark nothing
        absl::MutexLock l(&mu_);
        dirty_[m.node].insert(m.block);
        continue;
      }
      LOG_WARN("disk %d block %d: flush failed on %s; marking it stale", id_, m.block, m.node);
      RETURN_IF_ERROR(MarkStale(m.block, {m.node}));
    }
    return short_of;
  }
}

}  // namespace ukai::client
