// ukaictl's data movers: backup, restore, export and import. They read and
// write disks through libukai (no FUSE mount), straight from the nearest
// replicas, several blocks at a time. docs/BACKUP.md has the file format.
#ifndef UKAI_CTL_TRANSFER_H_
#define UKAI_CTL_TRANSFER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "client/include/ukai/cluster.h"
#include "ukai.pb.h"

namespace ukai::ctl {

// What the movers need of the admin service (ukaictl's gRPC calls).
struct AdminOps {
  std::function<absl::Status(const pb::CreateDiskRequest&)> create_disk;
  std::function<absl::StatusOr<pb::DiskSpec>(const std::string& disk)> get_disk;
  // Takes a snapshot (with Snapshot.restored_from set).
  std::function<absl::Status(const std::string& disk, const std::string& snap,
                             const std::string& restored_from)>
      snapshot;
};

struct TransferOptions {
  int parallel = 8;       // blocks in flight
  bool progress = false;  // a progress bar on stderr
};

struct TransferResult {
  uint64_t blocks = 0;  // blocks read or written
  uint64_t bytes = 0;   // bytes of them (what went to or came from the file)
  double seconds = 0;
};

// DISK@SNAP (or, since `since` not empty, only the blocks changed since
// snapshot DISK@since) into a backup file. The file is written to FILE.tmp
// and renamed when complete.
absl::StatusOr<TransferResult> Backup(client::Cluster* cluster, const std::string& disk,
                                      const std::string& snap, const std::string& since,
                                      const std::string& file, const TransferOptions& opts);
// A full backup into a new disk `disk`, or an incremental one onto the disk
// restored from its base. The file is checked whole before anything is
// written: a truncated or corrupt file, or an incremental whose base is not
// the disk's newest restored snapshot, leaves the target untouched. Ends with
// a snapshot of the target named as the backup's.
absl::StatusOr<TransferResult> Restore(client::Cluster* cluster, const AdminOps& admin,
                                       const std::string& file, const std::string& disk,
                                       const TransferOptions& opts);
// DISK or DISK@SNAP as a sparse raw image.
absl::StatusOr<TransferResult> Export(client::Cluster* cluster, const std::string& ref,
                                      const std::string& file, const TransferOptions& opts);
// A raw image into a new thin disk (zero blocks are not stored). `req`
// carries placement and block size; its size comes from the file.
absl::StatusOr<TransferResult> Import(client::Cluster* cluster, const AdminOps& admin,
                                      const std::string& file, pb::CreateDiskRequest req,
                                      const TransferOptions& opts);

}  // namespace ukai::ctl

#endif  // UKAI_CTL_TRANSFER_H_
