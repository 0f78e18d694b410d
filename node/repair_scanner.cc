#include "node/repair_scanner.h"

#include "common/log.h"

namespace ukai::node {

bool NeedsRepair(const pb::BlockChunk& chunk, const std::string& node,
                 const std::set<std::string>& live) {
  for (const auto& ptr : chunk.blocks()) {
    bool mine = false, source = false;
    for (const auto& r : ptr.replicas()) {
      mine = mine || (r.node() == node && r.state() == pb::STALE);
      source = source || (r.state() == pb::CLEAN && live.count(r.node()) > 0);
    }
    if (mine && source) return true;
  }
  return false;
}

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

std::vector<std::string> RepairScanner::ScanOnce() {
  std::vector<std::string> started;
  auto disks = catalog_->ListDisks();
  auto live = catalog_->LiveNodes();
  if (!disks.ok() || !live.ok()) {
    LOG_DEBUG("repair scan: %s", (!disks.ok() ? disks.status() : live.status()).ToString());
    return started;
  }
  for (const auto& d : *disks) {
    if (stop_.HasBeenNotified()) break;
    if (d.state() != pb::DiskSpec::READY) continue;
    auto chunks = catalog_->ReadChunks(d.id());
    if (!chunks.ok()) continue;  // deleted meanwhile, or ZooKeeper away: next pass
    bool needed = false;
    for (const auto& [c, chunk] : *chunks) needed = needed || NeedsRepair(chunk, self_, *live);
    if (!needed) continue;
    auto job = catalog_->StartRepair(d.name(), 0);
    if (job.ok()) {
      LOG_INFO("job %s: repair of disk %s started: this node's copy of some blocks is stale",
               job->id(), d.name());
      started.push_back(d.name());
    } else if (!absl::IsFailedPrecondition(job.status())) {
      LOG_WARN("repair of disk %s: %s", d.name(), job.status().ToString());
    }
  }
  return started;
}

}  // namespace ukai::node
