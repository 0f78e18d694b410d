// FileAccess: the owner and permission bits of each disk file on this
// hypervisor, as set by chown/chmod (libvirt's dynamic ownership gives a
// VM's disks to the user its QEMU runs as, and takes them back after).
//
// Kept per host, not in the catalog: after a live migration libvirt on the
// source restores its own view of the file while the destination's QEMU keeps
// the disk, and the two must not undo each other. The table survives a
// remount in a private file, rewritten whole (WriteFileAtomically) on every
// change; it is keyed by inode, which is derived from never-reused disk ids,
// so a new disk that takes a deleted disk's name starts with the defaults.
//
// The kernel enforces the bits (the mount has default_permissions): this
// class only remembers them. Thread-safe.
#ifndef UKAI_FUSE_FILE_ACCESS_H_
#define UKAI_FUSE_FILE_ACCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace ukai::fuse {

struct Access {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0600;  // permission bits only (07777 at most)
  bool operator==(const Access&) const = default;
};

class FileAccess {
 public:
  // At most this many files differ from the defaults (the file stays small).
  static constexpr size_t kMaxEntries = 1 << 20;

  // Loads `path` ("" keeps the table in memory only); a missing file is an
  // empty table, a malformed one an error naming the file and line.
  // `defaults` is what a file nobody changed shows.
  static absl::StatusOr<std::unique_ptr<FileAccess>> Open(const std::string& path, Access defaults);

  // What `ino` shows; `read_only` (snapshots) never has a write bit.
  Access Get(uint64_t ino, bool read_only) const;
  // Records a change and saves the table before returning.
  absl::Status Set(uint64_t ino, Access a);

  // The table as saved, and its parser (exposed for tests).
  static std::string Encode(const std::map<uint64_t, Access>& table);
  static absl::StatusOr<std::map<uint64_t, Access>> Decode(const std::string& text);

 private:
  FileAccess(std::string path, Access defaults, std::map<uint64_t, Access> table)
      : path_(std::move(path)), defaults_(defaults), table_(std::move(table)) {}

  const std::string path_;
  const Access defaults_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, Access> table_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ukai::fuse

#endif  // UKAI_FUSE_FILE_ACCESS_H_
