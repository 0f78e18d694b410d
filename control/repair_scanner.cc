#include "control/repair_scanner.h"

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "control/repair_plan.h"
#include "meta/layout.h"

namespace ukai::control {

void RepairScanner::Start() {
  if (interval_ <= absl::ZeroDuration()) return;
  thread_ = std::thread([this] {
    // The first pass soon after start: a node that was down has catching up to do.
    absl::Duration wait = std::min(interval_, absl::Seconds(1));
    while (!stop_.WaitForNotificationWithTimeout(wait)) {
      ScanOnce();
      wait = interval_;
    }
  });
}

void RepairScanner::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

std::set<std::string> RepairScanner::Leaving(const std::vector<pb::NodeInfo>& nodes,
                                             const std::set<std::string>& live) {
  std::set<std::string> out;
  auto states = catalog_->NodeStates();
  if (!states.ok()) return out;
  const uint64_t now = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  for (const auto& n : nodes) {
    const bool up = live.count(n.id()) > 0;
    pb::NodeState st = (*states)[n.id()];
    if (up == (st.down_since_ms() != 0)) {  // not as recorded: record it
      auto u = catalog_->UpdateNodeState(n.id(), [&](pb::NodeState* s) {
        if (up == (s->down_since_ms() == 0)) return false;  // another scan did
        s->set_down_since_ms(up ? 0 : now);
        return true;
      });
      if (!u.ok()) continue;
      st = *u;
      if (!up) LOG_INFO("node %s is down", n.id());
    }
    const bool dead = !up && st.down_since_ms() != 0 &&
                      absl::Milliseconds(now - std::min(now, st.down_since_ms())) > grace_;
    if (st.draining() || dead) out.insert(n.id());
  }
  return out;
}

std::vector<std::string> RepairScanner::ScanOnce() {
  std::vector<std::string> started;
  auto disks = catalog_->ListDisks();
  auto nodes = catalog_->ListNodes();
  auto live = catalog_->LiveNodes();
  if (!disks.ok() || !nodes.ok() || !live.ok()) {
    LOG_DEBUG("repair scan: %s", (!disks.ok()   ? disks.status()
                                  : !nodes.ok() ? nodes.status()
                                                : live.status())
                                     .ToString());
    return started;
  }
  RepairScope scope;
  scope.live = *live;
  scope.nodes = *nodes;
  scope.replace = Leaving(*nodes, *live);
  const std::vector<std::string> replace(scope.replace.begin(), scope.replace.end());
  for (const auto& d : *disks) {
    if (stop_.HasBeenNotified()) break;
    if (d.state() != pb::DiskSpec::READY) continue;
    auto chunks = catalog_->ReadChunks(d.id());
    if (!chunks.ok()) continue;  // deleted meanwhile, or ZooKeeper away: next pass
    scope.placement = d.placement();
    bool work = false;
    for (const auto& [c, chunk] : *chunks) {
      for (int i = 0; i < chunk.blocks_size() && !work; ++i) {
        work = PlanRepair(chunk.blocks(i), scope, c * meta::kChunkBlocks + i).work;
      }
    }
    if (!work) continue;
    auto job = catalog_->StartRepair(d.name(), bandwidth_bps_, replace);
    if (job.ok()) {
      LOG_INFO("job %s: repair of disk %s started (stale replicas%s%s)", job->id(), d.name(),
               replace.empty() ? "" : "; moving replicas off ", absl::StrJoin(replace, ","));
      started.push_back(d.name());
    } else if (!absl::IsFailedPrecondition(job.status())) {
      LOG_WARN("repair of disk %s: %s", d.name(), job.status().ToString());
    }
  }
  return started;
}

}  // namespace ukai::control
