#include "fuse/ukai_fs.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "common/status.h"

namespace ukai::fuse {
namespace {

constexpr fuse_ino_t kRoot = FUSE_ROOT_ID;

UkaiFs* Fs(fuse_req_t req) { return static_cast<UkaiFs*>(fuse_req_userdata(req)); }

// A disk's inode is its id + 1; a snapshot's has bit 62 set, the disk id and
// the snapshot's generation (both far below 2^24 in practice).
fuse_ino_t InoOf(const client::DiskAttr& a) {
  if (!a.snapshot) return a.id + 1;
  return fuse_ino_t{1} << 62 | (a.id & 0xffffffffff) << 22 | (a.generation & 0x3fffff);
}

void ReplyStatus(fuse_req_t req, const absl::Status& s) { fuse_reply_err(req, ToErrno(s)); }

}  // namespace

int ToErrno(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kNotFound:
      return ENOENT;
    case absl::StatusCode::kInvalidArgument:
      return EINVAL;
    case absl::StatusCode::kOutOfRange:
      return EINVAL;
    case absl::StatusCode::kAlreadyExists:
      return EEXIST;
    case absl::StatusCode::kPermissionDenied:
      return EIO;  // fenced writer: the guest sees EIO
    case absl::StatusCode::kFailedPrecondition:
      return EROFS;
    case absl::StatusCode::kResourceExhausted:
      return ENOSPC;
    case absl::StatusCode::kUnimplemented:
      return ENOSYS;
    default:
      return EIO;
  }
}

UkaiFs::UkaiFs(client::Cluster* cluster, FileAccess* access, FsOptions opts)
    : cluster_(cluster),
      access_(access),
      opts_(opts),
      uid_(getuid()),
      gid_(getgid()),
      mounted_at_(time(nullptr)) {}

void UkaiFs::Attach(fuse_session* se) {
  {
    absl::MutexLock l(&mu_);
    se_ = se;
  }
  cluster_->OnChange([this] { OnClusterChange(); });
}

// Tells the kernel to forget names that vanished and sizes that changed, so
// every mount sees create/delete/resize at once rather than after a timeout.
void UkaiFs::OnClusterChange() {
  auto names = Names();
  if (!names.ok()) return;
  std::set<std::string> now(names->begin(), names->end());
  std::vector<std::string> gone;
  std::vector<fuse_ino_t> resized;
  fuse_session* se;
  {
    absl::MutexLock l(&mu_);
    se = se_;
    for (auto it = names_.begin(); it != names_.end();) {
      if (!now.count(it->second)) {
        gone.push_back(it->second);
        sizes_.erase(it->second);
        it = names_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (se == nullptr) return;
  for (const auto& n : gone) fuse_lowlevel_notify_inval_entry(se, kRoot, n.c_str(), n.size());
  std::vector<std::pair<fuse_ino_t, std::string>> known;
  {
    absl::MutexLock l(&mu_);
    for (auto& [ino, name] : names_) known.emplace_back(ino, name);
  }
  for (const auto& [ino, name] : known) {
    auto attr = cluster_->Stat(name);  // a metadata read, off the data path, no lock held
    if (!attr.ok()) continue;
    absl::MutexLock l(&mu_);
    auto it = sizes_.find(name);
    if (it != sizes_.end() && attr->size != it->second) {
      it->second = attr->size;
      resized.push_back(ino);
    }
  }
  for (fuse_ino_t ino : resized) fuse_lowlevel_notify_inval_inode(se, ino, 0, 0);
}

struct stat UkaiFs::DiskStat(const client::DiskAttr& a) const {
  struct stat st = {};
  st.st_ino = InoOf(a);
  Access acc = access_->Get(st.st_ino, /*read_only=*/a.snapshot);
  st.st_mode = S_IFREG | acc.mode;
  st.st_nlink = 1;
  st.st_uid = acc.uid;
  st.st_gid = acc.gid;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blksize = 4096;
  st.st_blocks = static_cast<blkcnt_t>(a.size / 512);
  st.st_mtim.tv_sec = st.st_ctim.tv_sec = st.st_atim.tv_sec =
      static_cast<time_t>(a.created_ms / 1000);
  return st;
}

absl::StatusOr<std::string> UkaiFs::NameOf(fuse_ino_t ino) {
  absl::MutexLock l(&mu_);
  auto it = names_.find(ino);
  if (it == names_.end()) return absl::NotFoundError("unknown inode");
  return it->second;
}

void UkaiFs::Init(fuse_conn_info* conn) {
  conn->max_write = opts_.max_write;
  // Async direct I/O lets the kernel keep many O_DIRECT requests of one file
  // in flight; without it iodepth is worthless (../shared/peers/README.md).
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  conn->max_background = 128;
  conn->congestion_threshold = 96;
}

void UkaiFs::Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent != kRoot) return (void)fuse_reply_err(req, ENOENT);
  auto attr = cluster_->Stat(name);
  if (!attr.ok())
    return ReplyStatus(req, absl::IsInvalidArgument(attr.status()) ? absl::NotFoundError("bad name")
                                                                   : attr.status());
  {
    absl::MutexLock l(&mu_);
    names_[InoOf(*attr)] = name;
    sizes_[name] = attr->size;
  }
  fuse_entry_param e = {};
  e.ino = InoOf(*attr);
  e.attr = DiskStat(*attr);
  e.attr_timeout = opts_.attr_timeout;
  e.entry_timeout = opts_.entry_timeout;
  fuse_reply_entry(req, &e);
}

void UkaiFs::GetAttr(fuse_req_t req, fuse_ino_t ino) {
  if (ino == kRoot) {
    struct stat st = {};
    st.st_ino = kRoot;
    st.st_mode = S_IFDIR | 0755;
    st.st_nlink = 2;
    st.st_uid = uid_;
    st.st_gid = gid_;
    st.st_mtim.tv_sec = st.st_ctim.tv_sec = st.st_atim.tv_sec = mounted_at_;
    return (void)fuse_reply_attr(req, &st, opts_.attr_timeout);
  }
  auto name = NameOf(ino);
  if (!name.ok()) return ReplyStatus(req, name.status());
  auto attr = cluster_->Stat(*name);
  if (!attr.ok()) return ReplyStatus(req, attr.status());
  if (InoOf(*attr) != ino) return (void)fuse_reply_err(req, ENOENT);  // name reused
  struct stat st = DiskStat(*attr);
  fuse_reply_attr(req, &st, opts_.attr_timeout);
}

void UkaiFs::SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set) {
  if (ino == kRoot) return (void)fuse_reply_err(req, EPERM);
  auto name = NameOf(ino);
  if (!name.ok()) return ReplyStatus(req, name.status());
  auto cur = cluster_->Stat(*name);
  if (!cur.ok()) return ReplyStatus(req, cur.status());
  // The size of a disk changes only through `ukaictl disk resize`; truncating
  // to its current size (qemu-img does) is allowed. Times are fixed.
  if ((to_set & FUSE_SET_ATTR_SIZE) && static_cast<uint64_t>(attr->st_size) != cur->size) {
    return (void)fuse_reply_err(req, EPERM);
  }
  if (int err = ChangeAccess(*cur, *attr, to_set); err != 0) return (void)fuse_reply_err(req, err);
  struct stat st = DiskStat(*cur);
  fuse_reply_attr(req, &st, opts_.attr_timeout);
}

// The kernel has already checked that the caller may (default_permissions):
// chown needs CAP_CHOWN, chmod the owner.
int UkaiFs::ChangeAccess(const client::DiskAttr& cur, const struct stat& attr, int to_set) {
  if ((to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) == 0) return 0;
  fuse_ino_t ino = InoOf(cur);
  Access a = access_->Get(ino, /*read_only=*/false);
  if (to_set & FUSE_SET_ATTR_MODE) a.mode = attr.st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) a.uid = attr.st_uid;
  if (to_set & FUSE_SET_ATTR_GID) a.gid = attr.st_gid;
  absl::Status s = access_->Set(ino, a);
  if (!s.ok()) {
    LOG_ERROR("cannot record the owner or mode of %s: %s", cur.name, s.message());
    return absl::IsResourceExhausted(s) ? ENOSPC : EIO;
  }
  LOG_INFO("%s: owner %u:%u mode %o", cur.name, a.uid, a.gid, a.mode);
  return 0;
}

absl::StatusOr<std::vector<std::string>> UkaiFs::Names() {
  ASSIGN_OR_RETURN(auto disks, cluster_->ListDisks());
  std::vector<std::string> out;
  for (const auto& d : disks) {
    out.push_back(d);
    auto snaps = cluster_->ListSnapshots(d);
    if (!snaps.ok()) continue;  // deleted meanwhile
    for (const auto& s : *snaps) out.push_back(d + "@" + s);
  }
  return out;
}

void UkaiFs::ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off) {
  if (ino != kRoot) return (void)fuse_reply_err(req, ENOTDIR);
  auto names = Names();
  if (!names.ok()) return ReplyStatus(req, names.status());
  std::vector<char> buf(size);
  size_t used = 0;
  std::vector<std::pair<std::string, struct stat>> entries;
  struct stat dir = {};
  dir.st_mode = S_IFDIR;
  dir.st_ino = kRoot;
  entries.push_back({".", dir});
  entries.push_back({"..", dir});
  for (const auto& n : *names) {
    struct stat st = {};
    st.st_mode = S_IFREG;
    st.st_ino = static_cast<ino_t>(std::hash<std::string>()(n) | 1u << 30);
    entries.push_back({n, st});
  }
  for (size_t i = static_cast<size_t>(off); i < entries.size(); ++i) {
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, entries[i].first.c_str(),
                                    &entries[i].second, static_cast<off_t>(i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void UkaiFs::Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino == kRoot) return (void)fuse_reply_err(req, EISDIR);
  auto name = NameOf(ino);
  if (!name.ok()) return ReplyStatus(req, name.status());
  bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
  auto vol = cluster_->Open(*name, writable);
  if (!vol.ok()) {
    LOG_WARN("open %s: %s", *name, vol.status().ToString());
    return ReplyStatus(req, vol.status());
  }
  if (InoOf((*vol)->attr()) != ino) return (void)fuse_reply_err(req, ENOENT);
  fi->fh = reinterpret_cast<uint64_t>(new OpenFile{std::move(*vol)});
  fi->direct_io = 1;  // no page cache: O_DIRECT semantics for every opener
  fi->keep_cache = 0;
  if (fuse_reply_open(req, fi) != 0) delete File(fi);  // the opener was interrupted
}

void UkaiFs::Read(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi) {
  OpenFile* f = File(fi);
  uint64_t disk_size = f->volume->size();
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  if (static_cast<uint64_t>(off) >= disk_size) return (void)fuse_reply_buf(req, nullptr, 0);
  size = static_cast<size_t>(std::min<uint64_t>(size, disk_size - off));
  // Answered from libukai's reply thread: this worker goes back to the
  // kernel's queue at once instead of waiting for the node.
  char* buf = static_cast<char*>(malloc(size));
  if (buf == nullptr) return (void)fuse_reply_err(req, ENOMEM);
  f->volume->ReadAsync(static_cast<uint64_t>(off), size, buf,
                       [req, buf, size, off, keep = f->volume](absl::Status s) {
                         if (s.ok()) {
                           fuse_reply_buf(req, buf, size);
                         } else {
                           LOG_WARN("read %d+%d: %s", off, size, s.ToString());
                           ReplyStatus(req, s);
                         }
                         free(buf);
                       });
}

void UkaiFs::Write(fuse_req_t req, const char* data, size_t size, off_t off, fuse_file_info* fi) {
  OpenFile* f = File(fi);
  uint64_t disk_size = f->volume->size();
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  if (static_cast<uint64_t>(off) >= disk_size) return (void)fuse_reply_err(req, ENOSPC);
  size = static_cast<size_t>(std::min<uint64_t>(size, disk_size - off));  // short write at the end
  // libukai is done with `data` when WriteAsync returns (libfuse reuses it).
  f->volume->WriteAsync(static_cast<uint64_t>(off), data, size,
                        [req, size, off, keep = f->volume](absl::Status s) {
                          if (s.ok()) return (void)fuse_reply_write(req, size);
                          LOG_WARN("write %d+%d: %s", off, size, s.ToString());
                          ReplyStatus(req, s);
                        });
}

void UkaiFs::Flush(fuse_req_t req, fuse_file_info* fi) {
  absl::Status s = File(fi)->volume->Flush();
  if (!s.ok()) LOG_WARN("flush: %s", s.ToString());
  ReplyStatus(req, s);
}

void UkaiFs::Release(fuse_req_t req, fuse_file_info* fi) {
  delete File(fi);  // the last writable handle flushes and gives up the writer epoch
  fuse_reply_err(req, 0);
}

void UkaiFs::StatFs(fuse_req_t req) {
  struct statvfs st = {};
  st.f_bsize = st.f_frsize = 4096;
  st.f_blocks = st.f_bfree = st.f_bavail = 1ull << 40;  // disks are pre-sized; nothing to fill
  st.f_namemax = 64;
  fuse_reply_statfs(req, &st);
}

namespace {

void OpInit(void* userdata, fuse_conn_info* conn) { static_cast<UkaiFs*>(userdata)->Init(conn); }
void OpLookup(fuse_req_t r, fuse_ino_t p, const char* n) { Fs(r)->Lookup(r, p, n); }
void OpGetAttr(fuse_req_t r, fuse_ino_t i, fuse_file_info*) { Fs(r)->GetAttr(r, i); }
void OpSetAttr(fuse_req_t r, fuse_ino_t i, struct stat* a, int s, fuse_file_info*) {
  Fs(r)->SetAttr(r, i, a, s);
}
void OpReadDir(fuse_req_t r, fuse_ino_t i, size_t s, off_t o, fuse_file_info*) {
  Fs(r)->ReadDir(r, i, s, o);
}
void OpOpen(fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) { Fs(r)->Open(r, i, fi); }
void OpRead(fuse_req_t r, fuse_ino_t, size_t s, off_t o, fuse_file_info* fi) {
  Fs(r)->Read(r, s, o, fi);
}
void OpWrite(fuse_req_t r, fuse_ino_t, const char* b, size_t s, off_t o, fuse_file_info* fi) {
  Fs(r)->Write(r, b, s, o, fi);
}
void OpFlush(fuse_req_t r, fuse_ino_t, fuse_file_info* fi) { Fs(r)->Flush(r, fi); }
void OpFsync(fuse_req_t r, fuse_ino_t, int, fuse_file_info* fi) { Fs(r)->Flush(r, fi); }
void OpRelease(fuse_req_t r, fuse_ino_t, fuse_file_info* fi) { Fs(r)->Release(r, fi); }
void OpStatFs(fuse_req_t r, fuse_ino_t) { Fs(r)->StatFs(r); }
void OpNoCreate(fuse_req_t r, fuse_ino_t, const char*, mode_t, fuse_file_info*) {
  fuse_reply_err(r, EPERM);  // disks are made with `ukaictl disk create`
}
void OpNoUnlink(fuse_req_t r, fuse_ino_t, const char*) { fuse_reply_err(r, EPERM); }

}  // namespace

const fuse_lowlevel_ops* UkaiFs::Ops() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o = {};
    o.init = OpInit;
    o.lookup = OpLookup;
    o.getattr = OpGetAttr;
    o.setattr = OpSetAttr;
    o.readdir = OpReadDir;
    o.open = OpOpen;
    o.read = OpRead;
    o.write = OpWrite;
    o.flush = OpFlush;
    o.fsync = OpFsync;
    o.release = OpRelease;
    o.statfs = OpStatFs;
    o.create = OpNoCreate;
    o.unlink = OpNoUnlink;
    return o;
  }();
  return &ops;
}

}  // namespace ukai::fuse
