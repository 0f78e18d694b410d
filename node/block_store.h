// BlockStore: byte-range reads and writes of one block's object
// (disk, block, generation) over a PageStore. Pages carry a CRC32C; a page
// whose checksum fails is never returned (DATA_LOSS). An all-zero page is
// stored as no page (thin). Partial pages are read-modify-written under a
// per-block lock, so concurrent writes to one block never lose each other.
// Thread-safe.
#ifndef UKAI_NODE_BLOCK_STORE_H_
#define UKAI_NODE_BLOCK_STORE_H_

#include <array>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "node/page_store.h"

namespace ukai::node {

struct ObjectId {
  uint64_t disk;
  uint64_t block;
  uint64_t generation;
};

class BlockStore {
 public:
  explicit BlockStore(std::unique_ptr<PageStore> pages) : pages_(std::move(pages)) {}

  // `offset + data.size()` must not pass the block's end (the caller checks
  // the disk's geometry). Not durable until Sync.
  absl::Status Write(const ObjectId& obj, uint32_t offset, absl::string_view data);
  // Appends `length` bytes to `out`; pages never written read as zeros.
  // With `may_block` false: WouldBlock() instead of waiting for a disk
  // (PageStore::GetNoWait).
  absl::Status Read(const ObjectId& obj, uint32_t offset, uint32_t length, std::string* out,
                    bool may_block = true);
  absl::Status Sync() { return pages_->Sync(); }
  absl::Status DropDisk(uint64_t disk) { return pages_->DropDisk(disk); }
  absl::StatusOr<std::map<uint64_t, uint64_t>> DiskBytes() { return pages_->DiskBytes(); }

 private:
  absl::Mutex& LockFor(const ObjectId& obj);

  std::unique_ptr<PageStore> pages_;
  std::array<absl::Mutex, 64> stripes_;  // per-block RMW locks; leaves, never nested
};

}  // namespace ukai::node

#endif  // UKAI_NODE_BLOCK_STORE_H_
