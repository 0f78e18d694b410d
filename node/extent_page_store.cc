// PageStore with page data in sparse extent files and RocksDB as the index
// (docs/STORAGE.md). One file per object, <dir>/objects/<disk>/<block>.<gen>,
// holds page p at offset p * 4 KiB; the index maps the page's 28-byte key to
// its 4-byte CRC32C. A page without an index entry was never written (or was
// zeroed) and reads as absent.
//
// Why: Debian's RocksDB computes CRC32C in software; with page data in the
// WAL and blob files that was 26% of all CPU on 1 MiB writes (perf, see
// bench/RESULTS.md). Here data goes straight to the page cache with one
// pwritev, and RocksDB carries only 32 bytes per page.
//
// Durability: Apply writes data, then the index batch (unsynced); Sync
// fdatasyncs every file written since the last Sync, then syncs the index
// WAL. A crash between data and index writes leaves a page whose checksum
// does not match: it reads as DATA_LOSS (the client goes to another
// replica), never as wrong data.
#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "node/page_store.h"
#include "node/page_store_internal.h"

namespace ukai::node {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kValue = 4 + kPage;

struct ObjectKey {
  uint64_t disk, block, generation;
  auto operator<=>(const ObjectKey&) const = default;
};
ObjectKey ObjectOf(const PageKey& k) { return {k.disk, k.block, k.generation}; }
// `next` is the page right after `prev` in the same object (a run goes on).
bool Follows(const PageKey& prev, const PageKey& next) {
  return ObjectOf(next) == ObjectOf(prev) && next.page == prev.page + 1;
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

// An open object file; closed when the last user lets go, so evicting it from
// the table never pulls an fd from under a running pread.
struct File {
  explicit File(int f) : fd(f) {}
  ~File() { close(fd); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  const int fd;
};
using FilePtr = std::shared_ptr<File>;

class ExtentPageStore : public PageStore {
 public:
  ExtentPageStore(std::string dir, std::unique_ptr<rocksdb::DB> index)
      : dir_(std::move(dir)), index_(std::move(index)) {}
  ~ExtentPageStore() override { (void)index_->Close(); }

  absl::Status Get(const std::vector<PageKey>& keys,
                   std::vector<std::optional<std::string>>* values) override {
    return Read(keys, values, /*nowait=*/false);
  }
  // The index from RocksDB's memtable and block cache only, the pages with
  // RWF_NOWAIT: anything on disk makes it WouldBlock, and the caller asks Get
  // on a thread that may wait.
  absl::Status GetNoWait(const std::vector<PageKey>& keys,
                         std::vector<std::optional<std::string>>* values) override {
    return Read(keys, values, /*nowait=*/true);
  }

  absl::Status PlanRead(const std::vector<PageKey>& keys, PagePlan* plan) override {
    return Plan(keys, /*nowait=*/true, plan);
  }

  // The index entries, then runs of present, consecutive pages of one
  // object: one file read each.
  absl::Status Plan(const std::vector<PageKey>& keys, bool nowait, PagePlan* plan) {
    plan->keys = keys;
    plan->runs.clear();
    plan->files.clear();
    RETURN_IF_ERROR(ReadCrcs(keys, &plan->crcs, nowait));
    const auto& crcs = plan->crcs;
    size_t at = 0;
    for (size_t i = 0; i < keys.size();) {
      if (!crcs[i]) {
        ++i;
        continue;
      }
      size_t j = i + 1;
      while (j < keys.size() && crcs[j] && Follows(keys[j - 1], keys[j])) ++j;
      auto fd = Fd(ObjectOf(keys[i]), /*create=*/false);
      if (!fd.ok()) return fd.status();
      plan->runs.push_back({(*fd)->fd, keys[i].page * kPage, i, j - i, at});
      plan->files.push_back(*std::move(fd));
      at += (j - i) * kPage;
      i = j;
    }
    plan->data.assign(at, '\0');
    return absl::OkStatus();
  }

  absl::Status Read(const std::vector<PageKey>& keys,
                    std::vector<std::optional<std::string>>* values, bool nowait) {
    values->assign(keys.size(), std::nullopt);
    PagePlan plan;
    RETURN_IF_ERROR(Plan(keys, nowait, &plan));
    RETURN_IF_ERROR(ReadPlanned(&plan, nowait));
    for (const PagePlan::Run& r : plan.runs) {
      for (size_t k = 0; k < r.n; ++k) {
        std::string v(kValue, '\0');
        EncodeCrc(*plan.crcs[r.first + k], v.data());
        memcpy(v.data() + 4, plan.data.data() + r.at + k * kPage, kPage);
        (*values)[r.first + k] = std::move(v);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Apply(const std::vector<PageMutation>& batch) override {
    rocksdb::WriteBatch wb;
    for (size_t i = 0; i < batch.size();) {
      const PageMutation& m = batch[i];
      size_t j = i + 1;
      while (j < batch.size() && batch[j].erase == m.erase &&
             Follows(batch[j - 1].key, batch[j].key)) {
        ++j;
      }
      auto fd = Fd(ObjectOf(m.key), /*create=*/!m.erase);
      if (m.erase) {
        for (size_t k = i; k < j; ++k) wb.Delete(EncodePageKey(batch[k].key));
        if (fd.ok()) {  // give the space back; a missing file has nothing to free
          fallocate((*fd)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(m.key.page * kPage), static_cast<off_t>((j - i) * kPage));
        }
      } else {
        if (!fd.ok()) return fd.status();
        RETURN_IF_ERROR(WriteRun((*fd)->fd, batch, i, j));
        for (size_t k = i; k < j; ++k) {
          char crc[4];
          EncodeCrc(batch[k].crc, crc);
          wb.Put(EncodePageKey(batch[k].key), rocksdb::Slice(crc, 4));
        }
        absl::MutexLock l(&mu_);
        dirty_.insert(ObjectOf(m.key));
      }
      i = j;
    }
    return FromRocks(index_->Write(rocksdb::WriteOptions(), &wb), "index write");
  }

  absl::Status Sync() override {
    std::set<ObjectKey> dirty;
    {
      absl::MutexLock l(&mu_);
      dirty.swap(dirty_);
    }
    for (const auto& obj : dirty) {
      auto fd = Fd(obj, /*create=*/false);
      // fdatasync is per inode: a re-opened fd flushes what another one wrote.
      if (fd.ok() && fdatasync((*fd)->fd) != 0) {
        absl::MutexLock l(&mu_);
        dirty_.insert(dirty.begin(), dirty.end());
        return Errno("fdatasync");
      }
    }
    return FromRocks(index_->SyncWAL(), "index sync");
  }

  absl::Status DropDisk(uint64_t disk) override {
    {
      absl::MutexLock l(&mu_);
      for (auto it = fds_.lower_bound({disk, 0, 0}); it != fds_.end() && it->first.disk == disk;) {
        it = fds_.erase(it);
      }
      for (auto it = dirty_.lower_bound({disk, 0, 0}); it != dirty_.end() && it->disk == disk;) {
        it = dirty_.erase(it);
      }
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    RETURN_IF_ERROR(FromRocks(index_->DeleteRange(wo, index_->DefaultColumnFamily(),
                                                  DiskKeyPrefix(disk), DiskKeyPrefix(disk + 1)),
                              "index delete range"));
    std::error_code ec;
    std::filesystem::remove_all(DiskDir(disk), ec);
    if (ec) return absl::InternalError("removing " + DiskDir(disk) + ": " + ec.message());
    return absl::OkStatus();
  }

  // The object's index range in one tombstone, then its file: a crash in
  // between leaves a file nothing points to, never an index entry without
  // its data.
  absl::Status DropObject(uint64_t disk, uint64_t block, uint64_t generation,
                          uint32_t pages) override {
    const ObjectKey obj{disk, block, generation};
    // No page in the index (an unwritten block, no marks): write no range
    // tombstone. A relocation drops every block it moves, so an empty region
    // would leave one per block for RocksDB reads to step over (not measured
    // to matter yet). The file goes either way (its pages may all be zeroed).
    auto held = AnyKeyIn(index_.get(), EncodePageKey({disk, block, generation, 0}),
                         EncodePageKey({disk, block, generation, pages}));
    if (!held.ok()) return held.status();
    if (*held) {
      RETURN_IF_ERROR(FromRocks(
          index_->DeleteRange(rocksdb::WriteOptions(), index_->DefaultColumnFamily(),
                              ObjectKeyPrefix(disk, block, generation),  // see PageKeyHint
                              EncodePageKey({disk, block, generation, pages})),
          "index delete range"));
    }
    {
      absl::MutexLock l(&mu_);
      fds_.erase(obj);
      dirty_.erase(obj);
    }
    std::string path = absl::StrFormat("%s/%d.%d", DiskDir(disk), block, generation);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("unlink " + path);
    return absl::OkStatus();
  }

  absl::StatusOr<std::map<uint64_t, uint64_t>> DiskBytes() override {
    return CountPagesPerDisk(index_.get());
  }
  void StartWriteback(uint64_t disk, uint64_t block, uint64_t generation, uint32_t first,
                      uint32_t pages) override {
    auto fd = Fd({disk, block, generation}, /*create=*/false);
    if (!fd.ok()) return;
    (void)sync_file_range((*fd)->fd, static_cast<off_t>(first) * kPage,
                          static_cast<off_t>(pages) * kPage, SYNC_FILE_RANGE_WRITE);
  }
  absl::StatusOr<std::vector<std::pair<uint64_t, uint64_t>>> Objects(uint64_t disk, uint64_t first,
                                                                     uint64_t end) override {
    return ObjectsInRange(index_.get(), disk, first, end);
  }

 private:
  std::string DiskDir(uint64_t disk) const { return absl::StrFormat("%s/objects/%d", dir_, disk); }

  absl::StatusOr<FilePtr> Fd(const ObjectKey& obj, bool create) {
    absl::MutexLock l(&mu_);
    auto it = fds_.find(obj);
    if (it != fds_.end()) return it->second;
    std::string d = DiskDir(obj.disk);
    std::string path = absl::StrFormat("%s/%d.%d", d, obj.block, obj.generation);
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0 && errno == ENOENT && create) {
      std::error_code ec;
      std::filesystem::create_directories(d, ec);
      fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_CREAT, 0600);
    }
    if (fd < 0) {
      if (errno == ENOENT) return absl::NotFoundError(path);
      return Errno("open " + path);
    }
    // Guests read at random: a miss should fetch the pages asked for, not a
    // readahead window (a large read asks for its whole range anyway).
    posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    if (fds_.size() >= kMaxOpenFiles) fds_.clear();  // users keep theirs open
    auto file = std::make_shared<File>(fd);
    fds_[obj] = file;
    return file;
  }

  // Pages per pwritev. The page cache sizes a folio by the write that creates
  // it, and ext4 walks every buffer of a folio on each later write into it: a
  // 4 KiB overwrite cost 3.5 us in a file written 4-16 KiB at a time, 17 us
  // after 1 MiB writes and 37 us after 4 MiB ones (measured here, kernel 6.18).
  // Writing 16 KiB at a time keeps folios small: 4k random writes on data
  // first written in 1 MiB requests went from 11k to 16k IOPS through the
  // mount, 1 MiB writes lost under 5%.
  static constexpr size_t kPagesPerWrite = 4;
  // pwritev calls of kPagesPerWrite pages for batch[i, j): consecutive pages of one object.
  static absl::Status WriteRun(int fd, const std::vector<PageMutation>& batch, size_t i, size_t j) {
    std::vector<iovec> iov;
    iov.reserve(j - i);
    for (size_t k = i; k < j; ++k) {
      iov.push_back({const_cast<char*>(batch[k].data), kPage});
    }
    off_t off = static_cast<off_t>(batch[i].key.page * kPage);
    size_t done_iov = 0;
    while (done_iov < iov.size()) {
      int cnt = static_cast<int>(std::min<size_t>(iov.size() - done_iov, kPagesPerWrite));
      ssize_t n = pwritev(fd, iov.data() + done_iov, cnt, off);
      if (n < 0) return Errno("pwritev");
      if (n % kPage != 0) return absl::InternalError("short pwritev");
      done_iov += static_cast<size_t>(n) / kPage;
      off += n;
    }
    return absl::OkStatus();
  }

  // The index entries for `keys`. A run of consecutive pages of one object is
  // one key range in the index: a scan walks it with one seek and a step per
  // page, where a point lookup searches the memtable's skip list once per page
  // (38% of a node's CPU on 1 MiB reads, by profile). Short runs use MultiGet.
  absl::Status ReadCrcs(const std::vector<PageKey>& keys, std::vector<std::optional<uint32_t>>* out,
                        bool nowait) {
    out->assign(keys.size(), std::nullopt);
    rocksdb::ReadOptions ro;
    if (nowait) ro.read_tier = rocksdb::kBlockCacheTier;
    std::vector<PageKey> point;
    std::vector<size_t> point_at;
    for (size_t i = 0; i < keys.size();) {
      size_t j = i + 1;
      while (j < keys.size() && Follows(keys[j - 1], keys[j])) ++j;
      if (j - i < kMinScanPages) {
        for (; i < j; ++i) {
          point.push_back(keys[i]);
          point_at.push_back(i);
        }
        continue;
      }
      RETURN_IF_ERROR(ScanCrcs(ro, keys, i, j, out));
      i = j;
    }
    if (point.empty()) return absl::OkStatus();
    std::vector<std::optional<std::string>> vals;
    RETURN_IF_ERROR(MultiGetPages(index_.get(), point, &vals, nowait));
    for (size_t k = 0; k < point.size(); ++k) {
      if (!vals[k]) continue;
      if (vals[k]->size() != 4) return absl::DataLossError("corrupt index entry");
      (*out)[point_at[k]] = DecodeCrc(vals[k]->data());
    }
    return absl::OkStatus();
  }

  // One iterator over keys[i, j), consecutive pages of one object.
  absl::Status ScanCrcs(rocksdb::ReadOptions ro, const std::vector<PageKey>& keys, size_t i,
                        size_t j, std::vector<std::optional<uint32_t>>* out) {
    PageKey end = keys[j - 1];
    ++end.page;
    std::string first = EncodePageKey(keys[i]), limit = EncodePageKey(end);
    rocksdb::Slice upper(limit);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(index_->NewIterator(ro));
    for (it->Seek(first); it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key(), v = it->value();
      if (k.size() != kPageKeySize || memcmp(k.data(), first.data(), 24) != 0 || v.size() != 4) {
        return absl::DataLossError("corrupt index entry");
      }
      uint64_t page = GetBigEndian(k.data() + 24, 4);
      (*out)[i + (page - keys[i].page)] = DecodeCrc(v.data());
    }
    if (ro.read_tier == rocksdb::kBlockCacheTier && it->status().IsIncomplete()) {
      return WouldBlock();
    }
    return FromRocks(it->status(), "index scan");
  }

  static constexpr size_t kMinScanPages = 8;
  static constexpr size_t kMaxOpenFiles = 4096;
  const std::string dir_;
  std::unique_ptr<rocksdb::DB> index_;
  absl::Mutex mu_;  // a leaf; held only around the fd table, never across I/O
  std::map<ObjectKey, FilePtr> fds_ ABSL_GUARDED_BY(mu_);
  std::set<ObjectKey> dirty_ ABSL_GUARDED_BY(mu_);  // written since the last Sync
};

}  // namespace

absl::Status ReadPlanned(PagePlan* plan, bool nowait) {
  for (const PagePlan::Run& r : plan->runs) {
    struct iovec iov = {plan->data.data() + r.at, r.n * kPage};
    ssize_t n = preadv2(r.fd, &iov, 1, static_cast<off_t>(r.offset), nowait ? RWF_NOWAIT : 0);
    if (nowait &&
        ((n < 0 && errno == EAGAIN) || (n >= 0 && static_cast<size_t>(n) < iov.iov_len))) {
      return WouldBlock();
    }
    if (n < 0) return Errno("pread");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PageStore>> NewExtentPageStore(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir + "/objects", ec);
  if (ec) return absl::UnavailableError("cannot create " + dir + "/objects: " + ec.message());
  rocksdb::Options o = IndexOptions();
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, dir + "/index", &raw);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrFormat("cannot open index in %s: %s", dir, s.ToString()));
  }
  return std::unique_ptr<PageStore>(new ExtentPageStore(dir, std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace ukai::node
