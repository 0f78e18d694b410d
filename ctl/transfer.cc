#include "ctl/transfer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/crc32c.h"
#include "common/status.h"
#include "common/units.h"
#include "meta/layout.h"

namespace ukai::ctl {
namespace {

constexpr char kMagic[8] = {'U', 'K', 'A', 'I', 'B', 'K', '1', '\n'};
constexpr uint32_t kRecordTag = 0x31434552;  // "REC1"
constexpr uint32_t kEndTag = 0x31444e45;     // "END1"
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxHeader = 1 << 20;

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

bool AllZero(const std::string& s) {
  static const char zeros[4096] = {};
  for (size_t at = 0; at < s.size(); at += sizeof(zeros)) {
    const size_t n = std::min(sizeof(zeros), s.size() - at);
    if (memcmp(s.data() + at, zeros, n) != 0) return false;
  }
  return true;
}

// A bar on stderr (a terminal only), redrawn at most 5 times a second.
class Progress {
 public:
  Progress(bool on, std::string what, uint64_t total)
      : on_(on && isatty(STDERR_FILENO)), what_(std::move(what)), total_(total) {}
  ~Progress() {
    if (on_ && drawn_) fprintf(stderr, "\n");
  }
  void Add(uint64_t bytes) {
    const uint64_t done = done_ += bytes;
    if (!on_) return;
    absl::MutexLock l(&mu_);
    const absl::Time now = absl::Now();
    if (now - last_ < absl::Milliseconds(200) && done < total_) return;
    last_ = now;
    drawn_ = true;
    const double f = total_ ? std::min(1.0, double(done) / double(total_)) : 1.0;
    const double secs = absl::ToDoubleSeconds(now - start_);
    const double rate = secs > 0 ? double(done) / secs : 0;
    const int width = 30, full = static_cast<int>(f * width);
    const double eta = rate > 0 ? double(total_ - std::min(total_, done)) / rate : -1;
    fprintf(stderr, "\r%s [%s%s] %3.0f%%  %s / %s  %s/s  ETA %s\033[K", what_.c_str(),
            std::string(full, '#').c_str(), std::string(width - full, '.').c_str(), 100 * f,
            FormatSize(done).c_str(), FormatSize(total_).c_str(),
            FormatSize(static_cast<uint64_t>(rate)).c_str(),
            eta < 0 ? "--" : absl::StrFormat("%.0fs", eta).c_str());
    fflush(stderr);
  }

 private:
  const bool on_;
  const std::string what_;
  const uint64_t total_;
  std::atomic<uint64_t> done_{0};
  absl::Mutex mu_;
  absl::Time start_ = absl::Now(), last_ = absl::InfinitePast();
  bool drawn_ = false;
};

// fn(i) for every i in [0, n), on up to `threads` threads; the first error
// stops the rest and is returned.
absl::Status ParallelFor(size_t n, int threads, const std::function<absl::Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  absl::Mutex mu;
  absl::Status first;
  auto work = [&] {
    for (size_t i; (i = next++) < n;) {
      absl::Status s = fn(i);
      if (s.ok()) continue;
      absl::MutexLock l(&mu);
      if (first.ok()) first = s;
      next = n;
      return;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(n)); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return first;
}

// Creates `path` for writing: new (a file or link already there is refused,
// never followed or truncated) and private (0600).
absl::StatusOr<int> CreateNew(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  if (errno == EEXIST) {
    return absl::AlreadyExistsError(
        path + " already exists (left by an interrupted run?): remove it and try again");
  }
  return Errno("cannot create " + path);
}

uint64_t BlockLen(uint64_t size, uint32_t bs, uint64_t block) {
  return std::min<uint64_t>(bs, size - block * bs);
}

// Sequential file writing and reading with one clear error each.
class Out {
 public:
  absl::Status Open(const std::string& path) {
    path_ = path;
    ASSIGN_OR_RETURN(fd_, CreateNew(path));
    return absl::OkStatus();
  }
  ~Out() {
    if (fd_ >= 0) close(fd_);
  }
  absl::Status Write(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t w = write(fd_, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Errno("writing " + path_);
      c += w;
      n -= static_cast<size_t>(w);
    }
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Put(T v) {
    return Write(&v, sizeof(v));
  }
  absl::Status Close() {
    if (fsync(fd_) != 0) return Errno("syncing " + path_);
    int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return Errno("closing " + path_);
    return absl::OkStatus();
  }

 private:
  std::string path_;
  int fd_ = -1;
};

class In {
 public:
  absl::Status Open(const std::string& path) {
    path_ = path;
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Errno("cannot open " + path);
    return absl::OkStatus();
  }
  ~In() {
    if (fd_ >= 0) close(fd_);
  }
  // Exactly n bytes, or DATA_LOSS naming what was cut short.
  absl::Status Read(void* p, size_t n, const char* what) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
      ssize_t r = read(fd_, c, n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Errno("reading " + path_);
      if (r == 0) {
        return absl::DataLossError(
            absl::StrFormat("%s is truncated (it ends inside %s)", path_, what));
      }
      c += r;
      n -= static_cast<size_t>(r);
    }
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Get(T* v, const char* what) {
    return Read(v, sizeof(*v), what);
  }
  bool AtEnd() {
    char c;
    return read(fd_, &c, 1) == 0;
  }
  // Back to the start, for another pass over the same open file.
  absl::Status Rewind() {
    if (lseek(fd_, 0, SEEK_SET) != 0) return Errno("rewinding " + path_);
    return absl::OkStatus();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

absl::Status Corrupt(const std::string& path, const std::string& what) {
  return absl::DataLossError(absl::StrFormat("%s is not a valid UKAI backup: %s", path, what));
}

// A disk's geometry, checked before anything is sized by it.
absl::Status CheckGeometry(const pb::BackupHeader& h, const std::string& path) {
  const uint32_t bs = h.block_size();
  if (bs < meta::kMinBlockSize || bs > meta::kMaxBlockSize || (bs & (bs - 1)) != 0 ||
      h.size() == 0 || h.size() > meta::kMaxDiskSize || h.size() % meta::kPageSize != 0) {
    return Corrupt(path,
                   absl::StrFormat("impossible geometry (%d bytes in blocks of %d)", h.size(), bs));
  }
  return absl::OkStatus();
}

// The file's magic and header, checked.
absl::StatusOr<pb::BackupHeader> ReadHeader(In& in) {
  char magic[sizeof(kMagic)];
  RETURN_IF_ERROR(in.Read(magic, sizeof(magic), "the file's magic"));
  if (memcmp(magic, kMagic, sizeof(kMagic)) != 0) return Corrupt(in.path(), "wrong magic");
  uint32_t hlen, hcrc;
  RETURN_IF_ERROR(in.Get(&hlen, "the header"));
  if (hlen > kMaxHeader) return Corrupt(in.path(), "header too long");
  std::string hbytes(hlen, '\0');
  RETURN_IF_ERROR(in.Read(hbytes.data(), hlen, "the header"));
  RETURN_IF_ERROR(in.Get(&hcrc, "the header"));
  pb::BackupHeader h;
  if (Crc32c(hbytes.data(), hbytes.size()) != hcrc || !h.ParseFromString(hbytes)) {
    return Corrupt(in.path(), "the header fails its checksum");
  }
  if (h.version() != kVersion) {
    return Corrupt(in.path(), absl::StrFormat("format version %d (this ukaictl reads %d)",
                                              h.version(), kVersion));
  }
  RETURN_IF_ERROR(CheckGeometry(h, in.path()));
  return h;
}

// What a pass over a backup saw: its header, and a checksum of its records
// (two passes that agree on both read the same backup).
struct BackupScan {
  pb::BackupHeader header;
  uint32_t chain = 0;
  uint64_t bytes = 0;  // the blocks' lengths, all-zero ones included
};

// Reads the backup in `in` record by record, checking every checksum and the
// structure; `fn` gets each record (block, data: empty for an all-zero block).
absl::StatusOr<BackupScan> ReadBackup(
    In& in, const std::function<absl::Status(uint64_t, const std::string&)>& fn) {
  ASSIGN_OR_RETURN(pb::BackupHeader h, ReadHeader(in));
  const uint64_t nblocks = (h.size() + h.block_size() - 1) / h.block_size();
  uint64_t count = 0, prev = 0, bytes = 0;
  std::string data;
  uint32_t chain = 0;
  for (;;) {
    uint32_t tag;
    RETURN_IF_ERROR(in.Get(&tag, "a record"));
    if (tag == kEndTag) break;
    if (tag != kRecordTag)
      return Corrupt(in.path(), absl::StrFormat("bad record tag after %d records", count));
    uint64_t block;
    uint32_t len, crc;
    RETURN_IF_ERROR(in.Get(&block, "a record"));
    RETURN_IF_ERROR(in.Get(&len, "a record"));
    RETURN_IF_ERROR(in.Get(&crc, "a record"));
    if (block >= nblocks || (count > 0 && block <= prev) ||
        (len != 0 && len != BlockLen(h.size(), h.block_size(), block))) {
      return Corrupt(in.path(), absl::StrFormat("record %d (block %d, %d bytes) is out of place",
                                                count, block, len));
    }
    data.resize(len);
    RETURN_IF_ERROR(in.Read(data.data(), len, "a block's data"));
    if (Crc32c(data.data(), len, static_cast<uint32_t>(block)) != crc) {
      return Corrupt(in.path(), absl::StrFormat("block %d fails its checksum", block));
    }
    chain = Crc32c(&crc, sizeof(crc), chain);
    bytes += BlockLen(h.size(), h.block_size(), block);
    RETURN_IF_ERROR(fn(block, data));
    prev = block;
    ++count;
  }
  uint64_t records;
  uint32_t end_crc;
  RETURN_IF_ERROR(in.Get(&records, "the end marker"));
  RETURN_IF_ERROR(in.Get(&end_crc, "the end marker"));
  if (records != count || end_crc != chain) {
    return Corrupt(in.path(), absl::StrFormat("the end marker says %d records, the file has %d",
                                              records, count));
  }
  if (!in.AtEnd()) return Corrupt(in.path(), "data after the end marker");
  return BackupScan{std::move(h), chain, bytes};
}

std::string SourceId(uint64_t disk_id, const std::string& snap, uint64_t generation) {
  return absl::StrFormat("%d@%s#%d", disk_id, snap, generation);
}

}  // namespace

absl::StatusOr<TransferResult> Backup(client::Cluster* cluster, const std::string& disk,
                                      const std::string& snap, const std::string& since,
                                      const std::string& file, const TransferOptions& opts) {
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(auto vol, cluster->Open(disk + "@" + snap, false));
  const client::DiskAttr attr = vol->attr();
  pb::BackupHeader h;
  h.set_version(kVersion);
  h.set_disk(disk);
  h.set_disk_id(attr.id);
  h.set_snapshot(snap);
  h.set_generation(attr.generation);
  h.set_size(attr.size);
  h.set_block_size(attr.block_size);
  h.set_created_ms(static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())));
  std::vector<uint64_t> blocks;
  if (since.empty()) {
    ASSIGN_OR_RETURN(blocks, vol->DataBlocks());
  } else {
    ASSIGN_OR_RETURN(auto base, cluster->Stat(disk + "@" + since));
    h.set_base_snapshot(since);
    h.set_base_generation(base.generation);
    ASSIGN_OR_RETURN(blocks, vol->ChangedBlocks(since));
  }
  uint64_t total = 0;
  for (uint64_t b : blocks) total += BlockLen(attr.size, attr.block_size, b);
  Progress progress(opts.progress, "backup " + disk + "@" + snap, total);

  // Blocks are read `parallel` at a time and written in order; a full
  // backup leaves out blocks that read as zeros, an incremental one records
  // them (empty) since they may hide older data. The record count goes in
  // the end marker, after them.
  const std::string tmp = file + ".tmp";
  Out out;
  RETURN_IF_ERROR(out.Open(tmp));
  const std::string hbytes = h.SerializeAsString();
  RETURN_IF_ERROR(out.Write(kMagic, sizeof(kMagic)));
  RETURN_IF_ERROR(out.Put(static_cast<uint32_t>(hbytes.size())));
  RETURN_IF_ERROR(out.Write(hbytes.data(), hbytes.size()));
  RETURN_IF_ERROR(out.Put(Crc32c(hbytes.data(), hbytes.size())));
  std::vector<std::string> slot(static_cast<size_t>(std::max(1, opts.parallel)));
  uint64_t records = 0;
  uint32_t chain = 0;
  TransferResult r;
  for (size_t at = 0; at < blocks.size(); at += slot.size()) {
    const size_t n = std::min(slot.size(), blocks.size() - at);
    RETURN_IF_ERROR(ParallelFor(n, opts.parallel, [&](size_t i) {
      const uint64_t b = blocks[at + i];
      slot[i].resize(BlockLen(attr.size, attr.block_size, b));
      RETURN_IF_ERROR(vol->Read(b * attr.block_size, slot[i].size(), slot[i].data()));
      progress.Add(slot[i].size());
      return absl::OkStatus();
    }));
    for (size_t i = 0; i < n; ++i) {
      const uint64_t b = blocks[at + i];
      const bool zero = AllZero(slot[i]);
      if (zero && since.empty()) continue;
      const uint32_t len = zero ? 0 : static_cast<uint32_t>(slot[i].size());
      const uint32_t crc = Crc32c(slot[i].data(), len, static_cast<uint32_t>(b));
      RETURN_IF_ERROR(out.Put(kRecordTag));
      RETURN_IF_ERROR(out.Put(b));
      RETURN_IF_ERROR(out.Put(len));
      RETURN_IF_ERROR(out.Put(crc));
      RETURN_IF_ERROR(out.Write(slot[i].data(), len));
      chain = Crc32c(&crc, sizeof(crc), chain);
      ++records;
      r.bytes += len;
    }
  }
  RETURN_IF_ERROR(out.Put(kEndTag));
  RETURN_IF_ERROR(out.Put(records));
  RETURN_IF_ERROR(out.Put(chain));
  RETURN_IF_ERROR(out.Close());
  if (rename(tmp.c_str(), file.c_str()) != 0) return Errno("renaming " + tmp);
  r.blocks = records;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

namespace {

// A full backup: a new disk of its geometry. The target must not exist.
absl::Status CreateTarget(const AdminOps& admin, const pb::BackupHeader& h, const std::string& disk,
                          const absl::StatusOr<pb::DiskSpec>& target) {
  if (target.ok()) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "disk '%s' exists; a full backup restores into a new disk (pick another name)", disk));
  }
  if (!absl::IsNotFound(target.status())) return target.status();
  pb::CreateDiskRequest req;
  req.set_name(disk);
  req.set_size(h.size());
  req.set_block_size(h.block_size());
  return admin.create_disk(req);
}

// An incremental: the target is the disk its base was last restored to,
// of the same geometry.
absl::Status CheckIncrementalTarget(const pb::BackupHeader& h, const std::string& file,
                                    const std::string& disk,
                                    const absl::StatusOr<pb::DiskSpec>& target) {
  if (!target.ok()) {
    return absl::Status(target.status().code(),
                        absl::StrFormat("%s (an incremental backup restores onto the disk its "
                                        "base %s@%s was restored to)",
                                        target.status().message(), h.disk(), h.base_snapshot()));
  }
  const std::string want = SourceId(h.disk_id(), h.base_snapshot(), h.base_generation());
  const pb::Snapshot* newest =
      target->snapshots().empty() ? nullptr : &target->snapshots(target->snapshots_size() - 1);
  if (newest == nullptr || newest->restored_from() != want) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s holds the changes since %s@%s, but disk '%s' was last restored from %s; restore "
        "the backups of the chain in order",
        file, h.disk(), h.base_snapshot(), disk,
        newest == nullptr || newest->restored_from().empty() ? "no backup"
                                                             : newest->restored_from()));
  }
  if (target->size() != h.size() || target->block_size() != h.block_size()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("disk '%s' is %d bytes in blocks of %d; the backup is of %d in %d", disk,
                        target->size(), target->block_size(), h.size(), h.block_size()));
  }
  return absl::OkStatus();
}

// Pass 2 of a restore: every block of the file onto `vol`, `parallel` at a time.
// The restore's second pass over `in`, which the first (`first`) found
// whole: writes every record to `vol`.
absl::StatusOr<TransferResult> WriteBackupBlocks(client::Volume* vol, In& in,
                                                 const BackupScan& first, const std::string& disk,
                                                 const TransferOptions& opts) {
  const pb::BackupHeader& h = first.header;
  Progress progress(opts.progress, "restore " + disk, first.bytes);
  TransferResult r;
  std::vector<std::pair<uint64_t, std::string>> batch;
  auto flush_batch = [&]() -> absl::Status {
    RETURN_IF_ERROR(ParallelFor(batch.size(), opts.parallel, [&](size_t i) {
      auto& [b, data] = batch[i];
      if (data.empty()) data.assign(BlockLen(h.size(), h.block_size(), b), '\0');
      RETURN_IF_ERROR(vol->Write(b * h.block_size(), data.data(), data.size()));
      progress.Add(data.size());
      return absl::OkStatus();
    }));
    r.blocks += batch.size();
    batch.clear();
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(in.Rewind());
  ASSIGN_OR_RETURN(BackupScan second, ReadBackup(in, [&](uint64_t b, const std::string& data) {
                     r.bytes += data.size();
                     batch.emplace_back(b, data);
                     if (batch.size() >= static_cast<size_t>(std::max(1, opts.parallel)) * 2) {
                       return flush_batch();
                     }
                     return absl::OkStatus();
                   }));
  RETURN_IF_ERROR(flush_batch());
  if (second.chain != first.chain ||
      second.header.SerializeAsString() != first.header.SerializeAsString()) {
    return absl::DataLossError(absl::StrFormat(
        "%s changed while it was restored: disk '%s' holds a mix; restore it again from a "
        "backup nothing is writing",
        in.path(), disk));
  }
  return r;
}

}  // namespace

absl::StatusOr<TransferResult> Restore(client::Cluster* cluster, const AdminOps& admin,
                                       const std::string& file, const std::string& disk,
                                       const TransferOptions& opts) {
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(ValidateDiskName(disk));
  // Pass 1: the whole file checks out, or nothing is touched. Pass 2 reads
  // the same open file and must see the same records.
  In in;
  RETURN_IF_ERROR(in.Open(file));
  ASSIGN_OR_RETURN(BackupScan first,
                   ReadBackup(in, [](uint64_t, const std::string&) { return absl::OkStatus(); }));
  const pb::BackupHeader& h = first.header;
  auto target = admin.get_disk(disk);
  const bool incremental = !h.base_snapshot().empty();
  RETURN_IF_ERROR(incremental ? CheckIncrementalTarget(h, file, disk, target)
                              : CreateTarget(admin, h, disk, target));
  ASSIGN_OR_RETURN(auto vol, cluster->Open(disk, true));
  if (incremental) {
    ASSIGN_OR_RETURN(auto since,
                     vol->ChangedBlocks(target->snapshots(target->snapshots_size() - 1).name()));
    if (!since.empty()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "disk '%s' was written after its last restore (%d block(s)); an incremental restore "
          "onto it would mix the two",
          disk, since.size()));
    }
  }
  ASSIGN_OR_RETURN(TransferResult r, WriteBackupBlocks(vol.get(), in, first, disk, opts));
  RETURN_IF_ERROR(vol->Flush());
  vol.reset();  // the writer lets go before the snapshot
  RETURN_IF_ERROR(
      admin.snapshot(disk, h.snapshot(), SourceId(h.disk_id(), h.snapshot(), h.generation())));
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

absl::StatusOr<TransferResult> Export(client::Cluster* cluster, const std::string& ref,
                                      const std::string& file, const TransferOptions& opts) {
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(auto vol, cluster->Open(ref, false));
  const client::DiskAttr attr = vol->attr();
  ASSIGN_OR_RETURN(auto blocks, vol->DataBlocks());
  uint64_t total = 0;
  for (uint64_t b : blocks) total += BlockLen(attr.size, attr.block_size, b);
  const std::string tmp = file + ".tmp";
  ASSIGN_OR_RETURN(int fd, CreateNew(tmp));
  auto closer = absl::Cleanup([&] {
    if (fd >= 0) close(fd);
  });
  if (ftruncate(fd, static_cast<off_t>(attr.size)) != 0) return Errno("sizing " + tmp);
  Progress progress(opts.progress, "export " + ref, total);
  std::atomic<uint64_t> written{0};
  // Each block is read whole; only its non-zero pages are written, so the
  // image stays as sparse as the disk.
  RETURN_IF_ERROR(ParallelFor(blocks.size(), opts.parallel, [&](size_t i) {
    const uint64_t b = blocks[i];
    std::string data(BlockLen(attr.size, attr.block_size, b), '\0');
    RETURN_IF_ERROR(vol->Read(b * attr.block_size, data.size(), data.data()));
    for (size_t at = 0; at < data.size();) {
      size_t end = at;
      while (end < data.size() &&
             !AllZero(data.substr(end, std::min<size_t>(4096, data.size() - end))))
        end += 4096;
      end = std::min(end, data.size());
      if (end > at) {
        const off_t pos = static_cast<off_t>(b * attr.block_size + at);
        if (pwrite(fd, data.data() + at, end - at, pos) != static_cast<ssize_t>(end - at)) {
          return Errno("writing " + tmp);
        }
        written += end - at;
        at = end;
      } else {
        at += 4096;
      }
    }
    progress.Add(data.size());
    return absl::OkStatus();
  }));
  if (fsync(fd) != 0) return Errno("syncing " + tmp);
  if (close(fd) != 0) {
    fd = -1;
    return Errno("closing " + tmp);
  }
  fd = -1;
  if (rename(tmp.c_str(), file.c_str()) != 0) return Errno("renaming " + tmp);
  TransferResult r;
  r.blocks = blocks.size();
  r.bytes = written;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

absl::StatusOr<TransferResult> Import(client::Cluster* cluster, const AdminOps& admin,
                                      const std::string& file, pb::CreateDiskRequest req,
                                      const TransferOptions& opts) {
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(ValidateDiskName(req.name()));
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open " + file);
  auto closer = absl::Cleanup([&] { close(fd); });
  struct stat st;
  if (fstat(fd, &st) != 0) return Errno("stat " + file);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return absl::InvalidArgumentError(file + " is not a regular file or block device");
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) return Errno("sizing " + file);
    size = static_cast<uint64_t>(end);
  }
  if (size == 0 || size % 512 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s is %d bytes; a raw image is a non-zero multiple of 512 bytes", file, size));
  }
  auto existing = admin.get_disk(req.name());
  if (existing.ok()) return absl::AlreadyExistsError("disk '" + req.name() + "' already exists");
  req.set_size(size);
  RETURN_IF_ERROR(admin.create_disk(req));
  ASSIGN_OR_RETURN(auto vol, cluster->Open(req.name(), true));
  const uint32_t bs = vol->attr().block_size;
  const uint64_t nblocks = (size + bs - 1) / bs;
  // Holes of a sparse file are not even read.
  std::vector<uint64_t> blocks;
  for (uint64_t b = 0; b < nblocks;) {
    off_t data = lseek(fd, static_cast<off_t>(b * bs), SEEK_DATA);
    if (data < 0) break;  // ENXIO: only holes from here
    b = static_cast<uint64_t>(data) / bs;
    if (b >= nblocks) break;
    blocks.push_back(b);
    ++b;
  }
  Progress progress(opts.progress, "import " + req.name(), size);
  std::atomic<uint64_t> stored{0};
  RETURN_IF_ERROR(ParallelFor(blocks.size(), opts.parallel, [&](size_t i) {
    const uint64_t b = blocks[i];
    std::string data(BlockLen(size, bs, b), '\0');
    ssize_t n = pread(fd, data.data(), data.size(), static_cast<off_t>(b * bs));
    if (n != static_cast<ssize_t>(data.size())) return Errno("reading " + file);
    if (!AllZero(data)) {
      RETURN_IF_ERROR(vol->Write(b * bs, data.data(), data.size()));
      stored += data.size();
    }
    progress.Add(data.size());
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(vol->Flush());
  TransferResult r;
  r.blocks = blocks.size();
  r.bytes = stored;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

}  // namespace ukai::ctl
