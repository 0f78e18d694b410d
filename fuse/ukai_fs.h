// UkaiFs: the FUSE low-level adapter that shows every disk of a cluster as a
// regular file in one flat directory. Thin by design: each handler turns a
// kernel request into one libukai call and replies exactly once; absl codes
// become errno here and nowhere else.
//
// Inode numbers are derived from disk ids (ino = id + 1; ids are never
// reused), so there is no inode table to keep in step with lookup/forget.
// Every open is direct_io: the kernel keeps no page cache of disk data.
//
// Thread safety: handlers run on libfuse's worker threads concurrently.
#ifndef UKAI_FUSE_UKAI_FS_H_
#define UKAI_FUSE_UKAI_FS_H_

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 12)
#include <fuse3/fuse_lowlevel.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/include/ukai/cluster.h"
#include "fuse/file_access.h"

namespace ukai::fuse {

struct FsOptions {
  double attr_timeout = 1.0;   // seconds the kernel may cache sizes and names;
  double entry_timeout = 1.0;  // changes are also pushed by invalidation
  unsigned max_write = 1u << 20;
};

class UkaiFs {
 public:
  // `cluster` and `access` must outlive the filesystem.
  UkaiFs(client::Cluster* cluster, FileAccess* access, FsOptions opts);

  static const fuse_lowlevel_ops* Ops();
  // Starts pushing changes (disks created/deleted/resized) to the kernel.
  void Attach(fuse_session* se);

  // Handlers (public for the C callbacks in ukai_fs.cc).
  void Init(fuse_conn_info* conn);
  void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void GetAttr(fuse_req_t req, fuse_ino_t ino);
  void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set);
  void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off);
  void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void Read(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi);
  void Write(fuse_req_t req, const char* buf, size_t size, off_t off, fuse_file_info* fi);
  void Flush(fuse_req_t req, fuse_file_info* fi);
  void Release(fuse_req_t req, fuse_file_info* fi);
  void StatFs(fuse_req_t req);

 private:
  struct OpenFile {
    std::shared_ptr<client::Volume> volume;
  };
  static OpenFile* File(fuse_file_info* fi) { return reinterpret_cast<OpenFile*>(fi->fh); }
  struct stat DiskStat(const client::DiskAttr& a) const;
  absl::StatusOr<std::string> NameOf(fuse_ino_t ino);
  // Every disk and, after each, its snapshots as DISK@SNAPSHOT.
  absl::StatusOr<std::vector<std::string>> Names();
  void OnClusterChange();

  // Applies chown/chmod to `cur`'s entry in access_; an errno or 0.
  int ChangeAccess(const client::DiskAttr& cur, const struct stat& attr, int to_set);

  client::Cluster* cluster_;
  FileAccess* access_;
  const FsOptions opts_;
  const uid_t uid_;
  const gid_t gid_;
  const time_t mounted_at_;
  absl::Mutex mu_;
  fuse_session* se_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::map<fuse_ino_t, std::string> names_ ABSL_GUARDED_BY(mu_);  // inodes the kernel knows
  std::map<std::string, uint64_t> sizes_ ABSL_GUARDED_BY(mu_);    // last sizes told
};

// absl code -> errno, for the kernel.
int ToErrno(const absl::Status& s);

}  // namespace ukai::fuse

#endif  // UKAI_FUSE_UKAI_FS_H_
