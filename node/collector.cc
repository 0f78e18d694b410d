#include "node/collector.h"

#include "common/log.h"

namespace ukai::node {

void Collector::Start() {
  if (every_ <= absl::ZeroDuration()) return;
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(every_)) {
      const uint64_t n = CollectOnce();
      if (n > 0) LOG_INFO("collection: %d object(s) nobody names any more dropped", n);
    }
  });
}

void Collector::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

uint64_t Collector::CollectOnce() {
  auto disks = store_->DiskBytes();
  if (!disks.ok()) {
    LOG_WARN("collection: listing disks: %s", disks.status().ToString());
    return 0;
  }
  uint64_t dropped = 0;
  for (const auto& [disk, bytes] : *disks) {
    if (stop_.HasBeenNotified()) break;
    auto n = copy_->CollectDisk(disk);
    if (n.ok()) {
      dropped += *n;
    } else {
      LOG_WARN("collection: disk %d: %s", disk, n.status().ToString());
    }
  }
  return dropped;
}

}  // namespace ukai::node
