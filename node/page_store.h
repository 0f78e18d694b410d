// PageStore: the node's persistent map from (disk, block, generation, page) to
// one stored page value (checksum + 4 KiB, see docs/STORAGE.md). BlockStore
// (block_store.h) turns byte ranges into page operations on it.
//
// Contract (node/block_store_test.cc checks it for every implementation):
//  - Apply is atomic: after a crash either all of a batch is visible or none.
//  - Nothing is durable until Sync returns OK; a crash may lose any batch
//    applied since the last Sync (MemPageStore::DropUnsynced models that).
//  - Get of a missing key yields nullopt. Errors are INTERNAL/DATA_LOSS.
// Thread safety: all methods may be called concurrently.
#ifndef UKAI_NODE_PAGE_STORE_H_
#define UKAI_NODE_PAGE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/status.h"

namespace ukai::node {

struct PageKey {
  uint64_t disk = 0;
  uint64_t block = 0;
  uint64_t generation = 0;
  uint32_t page = 0;
  auto operator<=>(const PageKey&) const = default;
};

// A page to store (or, with erase, to remove). `data` points at the page's
// 4096 bytes, owned by the caller and valid until Apply returns; `crc` is its
// CRC32C. Stored values read back (Get) as the 4-byte little-endian CRC
// followed by the page.
struct PageMutation {
  PageKey key;
  const char* data = nullptr;
  uint32_t crc = 0;
  bool erase = false;
};

// A read of pages planned from memory alone (PageStore::PlanRead): each
// page's checksum (nullopt: never written) and the file runs that hold the
// present ones, to be read into `data` (run r's pages at runs[r].at) by
// whoever carries the plan out. `files` keeps the runs' fds open.
struct PagePlan {
  struct Run {
    int fd;
    uint64_t offset;  // in the file
    size_t first, n;  // keys [first, first + n)
    size_t at;        // in data
  };
  std::vector<PageKey> keys;
  std::vector<std::optional<uint32_t>> crcs;
  std::vector<Run> runs;
  std::vector<std::shared_ptr<const void>> files;
  std::string data;
};

// Reads every run of `plan` into plan->data. With `nowait`, WouldBlock() as
// soon as a run is not all in memory (RWF_NOWAIT). A short read (the file
// ends early) leaves zeros: the page's checksum tells.
absl::Status ReadPlanned(PagePlan* plan, bool nowait);

class PageStore {
 public:
  virtual ~PageStore() = default;
  virtual absl::Status Get(const std::vector<PageKey>& keys,
                           std::vector<std::optional<std::string>>* values) = 0;
  // Get, but only from memory: WouldBlock() when it would wait for a disk.
  // A store that cannot tell always says so.
  virtual absl::Status GetNoWait(const std::vector<PageKey>&,
                                 std::vector<std::optional<std::string>>*) {
    return WouldBlock();
  }
  // Plans a read of `keys` from memory (the index from memory only:
  // WouldBlock() if that would wait). A store whose pages do not live in
  // files at known offsets always says WouldBlock().
  virtual absl::Status PlanRead(const std::vector<PageKey>& /*keys*/, PagePlan* /*plan*/) {
    return WouldBlock();
  }
  virtual absl::Status Apply(const std::vector<PageMutation>& batch) = 0;
  virtual absl::Status Sync() = 0;
  // Removes every page of `disk`.
  virtual absl::Status DropDisk(uint64_t disk) = 0;
  // Removes pages [0, pages) of one object. The default erases them one by
  // one; stores that keep an object together drop it whole.
  virtual absl::Status DropObject(uint64_t disk, uint64_t block, uint64_t generation,
                                  uint32_t pages) {
    std::vector<PageMutation> batch(pages);
    for (uint32_t p = 0; p < pages; ++p) {
      batch[p].key = {disk, block, generation, p};
      batch[p].erase = true;
    }
    return Apply(batch);
  }
  // Starts writing pages [first, first + pages) of one object to disk
  // without waiting, so a later Sync has little left to do and the disk
  // sees a steady stream instead of a burst. A hint: the default does nothing.
  virtual void StartWriteback(uint64_t /*disk*/, uint64_t /*block*/, uint64_t /*generation*/,
                              uint32_t /*first*/, uint32_t /*pages*/) {}
  // Bytes of page values stored per disk (pages * 4 KiB).
  virtual absl::StatusOr<std::map<uint64_t, uint64_t>> DiskBytes() = 0;
  // The objects (block, generation) of `disk` with blocks in [first, end)
  // that hold at least one page, in key order.
  virtual absl::StatusOr<std::vector<std::pair<uint64_t, uint64_t>>> Objects(uint64_t disk,
                                                                             uint64_t first,
                                                                             uint64_t end) = 0;
};

struct RocksDbOptions {
  bool blob_files = true;  // page values in blob files, keys in the LSM tree
  size_t block_cache_bytes = 256u << 20;
};

// Opens (creating if needed) a RocksDB database in `dir`.
absl::StatusOr<std::unique_ptr<PageStore>> NewRocksDbPageStore(const std::string& dir,
                                                               const RocksDbOptions& opts = {});

// Page data in sparse per-object files under `dir`, RocksDB as the index of
// page checksums (the default; see extent_page_store.cc for why).
absl::StatusOr<std::unique_ptr<PageStore>> NewExtentPageStore(const std::string& dir);

// In memory, for unit tests. Keeps applied-but-unsynced batches apart so a
// test can drop them like a power loss, and can corrupt a stored value.
class MemPageStore : public PageStore {
 public:
  MemPageStore();
  ~MemPageStore() override;
  absl::Status Get(const std::vector<PageKey>& keys,
                   std::vector<std::optional<std::string>>* values) override;
  absl::Status Apply(const std::vector<PageMutation>& batch) override;
  absl::Status Sync() override;
  absl::Status DropDisk(uint64_t disk) override;
  absl::StatusOr<std::map<uint64_t, uint64_t>> DiskBytes() override;
  absl::StatusOr<std::vector<std::pair<uint64_t, uint64_t>>> Objects(uint64_t disk, uint64_t first,
                                                                     uint64_t end) override;

  // Power loss: forgets every batch applied since the last Sync.
  void DropUnsynced();
  // Flips one byte of a stored value. Returns false if the key is absent.
  bool Corrupt(const PageKey& key, size_t byte);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ukai::node

#endif  // UKAI_NODE_PAGE_STORE_H_
