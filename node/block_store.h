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
#include <optional>
#include <string>
#include <vector>

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

// Generations with this bit set are the store's own: the written-sector marks
// of a replica being filled by a background copy (below). Requests never
// name one (BlockIo rejects them).
constexpr uint64_t kMarkGeneration = 1ull << 63;
// And the link of an object made by copy-on-write (CopyObject): one page
// naming the generation it reads through to. Requests never name one either.
constexpr uint64_t kLinkGeneration = 1ull << 62;
constexpr uint64_t kStoreGenerations = kMarkGeneration | kLinkGeneration;
constexpr uint32_t kSector = 512;

class BlockStore {
 public:
  explicit BlockStore(std::unique_ptr<PageStore> pages) : pages_(std::move(pages)) {}

  // `offset + data.size()` must not pass the block's end (the caller checks
  // the disk's geometry). Not durable until Sync.
  //
  // With `track` (a write to a replica in state SYNCING) the written sectors
  // are also marked, in the same atomic batch, so that pages pulled from
  // another replica later never overwrite them (ApplyPulled). Tracked writes
  // must be whole 512-byte sectors (INVALID_ARGUMENT otherwise).
  absl::Status Write(const ObjectId& obj, uint32_t offset, absl::string_view data,
                     bool track = false);

  // ---- background copy (docs/ARCHITECTURE.md, "Relocation")
  // The source side: pages [first, first + n) that exist, checked: `present`
  // gets n flags, `data` the present pages' bytes back to back.
  absl::Status ReadPages(const ObjectId& obj, uint32_t first, uint32_t n,
                         std::vector<bool>* present, std::string* data);
  // The destination side: stores pulled pages [first, first + present.size())
  // (`data` as ReadPages gives it), keeping every sector a tracked write
  // marked. Pages absent at the source are left alone.
  absl::Status ApplyPulled(const ObjectId& obj, uint32_t first, const std::vector<bool>& present,
                           absl::string_view data);
  // Scrub: the stored pages [first, first + n), each checked against its
  // checksum. `crcs` gets n entries (0 for a page not stored), `present` n
  // flags, `bad` the pages whose data no longer matches their checksum (a
  // failing page is read again under the block's lock before it is called
  // bad: a write may have landed between checksum and data).
  absl::Status VerifyPages(const ObjectId& obj, uint32_t first, uint32_t n,
                           std::vector<uint32_t>* crcs, std::vector<bool>* present,
                           std::vector<uint32_t>* bad);
  // Copy-on-write on this node (a first write after a snapshot): object `dst`
  // of the same block becomes a copy of `src` (what it reads as), or empty
  // with `src` nullptr. The copy is a link: `dst` holds only the pages
  // written to it since, and reads the others through to `src` (and on down
  // `src`'s own link), so it costs one small write however big the block.
  // A chain deeper than kMaxLinkDepth is copied page by page instead. Not
  // durable until Sync.
  absl::Status CopyObject(const ObjectId* src, const ObjectId& dst, uint32_t block_size);
  static constexpr int kMaxLinkDepth = 4;
  // Flatten: stores whole-object pages (`present` flags for every page of
  // the block, `data` the present ones back to back) as `obj`, in one
  // atomic batch, only if `obj` holds no page yet; false if it did.
  absl::StatusOr<bool> FillIfEmpty(const ObjectId& obj, const std::vector<bool>& present,
                                   absl::string_view data);
  // Forgets the marks of an object of `block_size` bytes (the copy is done).
  absl::Status ClearMarks(const ObjectId& obj, uint32_t block_size);
  // Removes an object and its marks (a cancelled or restarted copy, or a
  // replica moved away, or one no snapshot reads any more). Objects of the
  // block linked to it first take in the pages they read from it, in one
  // atomic batch each, and link on to what it linked to.
  absl::Status DropObject(const ObjectId& obj, uint32_t block_size);
  // Appends `length` bytes to `out`; pages never written read as zeros.
  // With `may_block` false: WouldBlock() instead of waiting for a disk
  // (PageStore::GetNoWait).
  absl::Status Read(const ObjectId& obj, uint32_t offset, uint32_t length, std::string* out,
                    bool may_block = true);
  // Read in two steps, for a caller that reads the files itself (an
  // io_uring): PlanRead from memory only (WouldBlock() if the index is not
  // in memory, or the store keeps no files), then, once every run of the
  // plan is read into plan.data, FinishRead appends what Read would have.
  absl::Status PlanRead(const ObjectId& obj, uint32_t offset, uint32_t length, PagePlan* plan);
  absl::Status FinishRead(uint32_t offset, uint32_t length, const PagePlan& plan,
                          std::string* out) const;
  absl::Status Sync() { return pages_->Sync(); }
  absl::Status DropDisk(uint64_t disk) { return pages_->DropDisk(disk); }
  absl::StatusOr<std::map<uint64_t, uint64_t>> DiskBytes() { return pages_->DiskBytes(); }
  // The objects of `disk` with blocks in [first, end) that hold data (not
  // counting written-sector marks), in block order.
  absl::StatusOr<std::vector<ObjectId>> Objects(uint64_t disk, uint64_t first, uint64_t end);

 private:
  absl::Status ReadUnlocked(const ObjectId& obj, uint32_t offset, uint32_t length, std::string* out,
                            bool may_block);
  absl::Status ReadPagesUnlocked(const ObjectId& obj, uint32_t first, uint32_t n,
                                 std::vector<bool>* present, std::string* data);
  absl::Mutex& LockFor(const ObjectId& obj);
  // The generation `obj` links to, if it is a linked copy.
  absl::StatusOr<std::optional<uint64_t>> LinkOf(const ObjectId& obj, bool may_block);
  // How many links a read of `obj` may follow (0: not linked).
  absl::StatusOr<int> LinkDepth(const ObjectId& obj);
  // Get of `keys` (pages of one object), following links for the pages the
  // object does not hold itself: each key found is rewritten to the object
  // that holds it, `vals` has what is stored there.
  absl::Status GetResolved(std::vector<PageKey>* keys,
                           std::vector<std::optional<std::string>>* vals, bool may_block);
  // A page mutation about to be written to `obj`: a zero page is erased
  // (absent reads as zeros) unless `obj` is a linked copy, where absent
  // reads through; others get their checksum. `linked` caches, per batch,
  // whether `obj` is linked (looked up at the first zero page).
  absl::Status SealPage(const ObjectId& obj, std::optional<bool>* linked, PageMutation* m);
  // The generations of objects of `obj`'s block that link to it.
  absl::StatusOr<std::vector<uint64_t>> LinkedTo(const ObjectId& obj);
  // Writes `obj`'s link (nullopt: removes it) into `batch`; `page` keeps the
  // value alive until the batch is applied.
  void SetLink(const ObjectId& obj, std::optional<uint64_t> to, std::string* page,
               std::vector<PageMutation>* batch);
  // The mark pages covering pages [first, last] of `obj`: their keys and
  // their decoded bytes (zeros where none is stored).
  absl::Status LoadMarkPages(const ObjectId& obj, uint32_t first, uint32_t last,
                             std::vector<PageKey>* keys, std::vector<std::string>* pages);
  // Sector masks of pages [first, last] (one byte a page); 0 when unmarked.
  absl::Status ReadMarks(const ObjectId& obj, uint32_t first, uint32_t last,
                         std::vector<uint8_t>* masks);

  std::unique_ptr<PageStore> pages_;
  std::array<absl::Mutex, 64> stripes_;  // per-block RMW locks; leaves, never nested
};

}  // namespace ukai::node

#endif  // UKAI_NODE_BLOCK_STORE_H_
