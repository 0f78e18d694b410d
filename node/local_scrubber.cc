#include "node/local_scrubber.h"

#include <algorithm>
#include <map>

#include "common/log.h"
#include "meta/generations.h"
#include "meta/layout.h"

namespace ukai::node {
namespace {
constexpr uint32_t kPagesPerCheck = 64;  // 256 KiB between pacing and stop checks
}  // namespace

void LocalScrubber::Start() {
  if (every_ <= absl::ZeroDuration()) return;
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(every_)) {
      const absl::Time began = absl::Now();
      Pass p = ScanOnce();
      LOG_INFO("local scrub: %d pages checked in %s, %d bad, %d replica(s) marked stale",
               p.pages_checked, absl::FormatDuration(absl::Now() - began), p.bad_pages,
               p.replicas_marked_stale);
    }
  });
}

void LocalScrubber::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

LocalScrubber::Pass LocalScrubber::ScanOnce() {
  Pass pass;
  auto disks = store_->DiskBytes();
  if (!disks.ok()) {
    LOG_WARN("local scrub: listing disks: %s", disks.status().ToString());
    return pass;
  }
  for (const auto& [disk, bytes] : *disks) {
    auto spec = catalog_->GetSpec(disk);
    if (!spec.ok()) continue;  // deleted meanwhile (the registry drops it), or ZooKeeper away
    auto objects = store_->Objects(disk, 0, UINT64_MAX);
    if (!objects.ok()) continue;
    for (const ObjectId& obj : *objects) {
      if (stop_.HasBeenNotified()) return pass;
      ScrubObject(spec->spec, obj, &pass);
    }
  }
  return pass;
}

namespace {
bool Names(const pb::BlockPtr& ptr, uint64_t generation) {
  const auto own = meta::OwnObjects(ptr);
  return std::find(own.begin(), own.end(), generation) != own.end();
}
}  // namespace

void LocalScrubber::ScrubObject(const pb::DiskSpec& spec, const ObjectId& obj, Pass* pass) {
  const uint64_t chunk_no = obj.block / meta::kChunkBlocks;
  auto chunk = catalog_->ReadChunk(obj.disk, chunk_no);
  if (!chunk.ok() || !chunk->has_value()) return;
  const auto& blocks = (*chunk)->chunk.blocks();
  const int index = static_cast<int>(obj.block % meta::kChunkBlocks);
  if (index >= blocks.size()) return;
  const pb::BlockPtr& ptr = blocks.Get(index);
  // Only this node's CLEAN copies of objects the block table names (the
  // current one and those snapshots keep): a stale or syncing one is being
  // (or will be) copied again anyway, and any other object is leftover.
  bool mine_clean = false;
  for (const auto& r : ptr.replicas()) {
    mine_clean = mine_clean || (r.node() == self_ && r.state() == pb::CLEAN);
  }
  if (!mine_clean || !Names(ptr, obj.generation)) return;

  const uint32_t pages = spec.block_size() / meta::kPageSize;
  std::vector<uint32_t> bad_pages;
  for (uint32_t first = 0; first < pages && !stop_.HasBeenNotified(); first += kPagesPerCheck) {
    const uint32_t n = std::min(kPagesPerCheck, pages - first);
    std::vector<uint32_t> crcs, bad;
    std::vector<bool> present;
    absl::Status s = store_->VerifyPages(obj, first, n, &crcs, &present, &bad);
    if (!s.ok()) {
      LOG_WARN("local scrub: disk %d block %d: %s", obj.disk, obj.block, s.ToString());
      return;
    }
    const auto stored = static_cast<uint64_t>(std::count(present.begin(), present.end(), true));
    pass->pages_checked += stored;
    pace_.Acquire(stored * meta::kPageSize);
    bad_pages.insert(bad_pages.end(), bad.begin(), bad.end());
  }
  if (bad_pages.empty()) return;
  pass->bad_pages += bad_pages.size();
  // Marked under compare-and-set, only while another CLEAN replica of the
  // same generation exists: the last clean copy is kept (a copy with a bad
  // page beats none) and a concurrent change wins.
  bool marked = false;
  auto updated =
      catalog_->UpdateChunk(obj.disk, chunk_no, [&](pb::BlockChunk* c) -> absl::StatusOr<bool> {
        marked = false;
        if (index >= c->blocks_size()) return false;
        pb::BlockPtr* p = c->mutable_blocks(index);
        if (!Names(*p, obj.generation)) return false;
        pb::Replica* mine = nullptr;
        int others_clean = 0;
        for (auto& r : *p->mutable_replicas()) {
          if (r.node() == self_)
            mine = &r;
          else
            others_clean += r.state() == pb::CLEAN;
        }
        if (mine == nullptr || mine->state() != pb::CLEAN || others_clean == 0) return false;
        mine->set_state(pb::STALE);
        marked = true;
        return true;
      });
  if (!updated.ok()) {
    LOG_WARN("local scrub: disk %d block %d: %d bad page(s); marking stale failed: %s", obj.disk,
             obj.block, bad_pages.size(), updated.status().ToString());
    return;
  }
  if (!marked) {
    LOG_WARN(
        "local scrub: disk %d block %d: %d page(s) fail their checksum (first: page %d) "
        "on its last clean replica; kept",
        obj.disk, obj.block, bad_pages.size(), bad_pages.front());
    return;
  }
  ++pass->replicas_marked_stale;
  LOG_WARN(
      "local scrub: disk %d block %d: %d page(s) fail their checksum (first: page %d); "
      "marked stale for repair",
      obj.disk, obj.block, bad_pages.size(), bad_pages.front());
}

}  // namespace ukai::node
