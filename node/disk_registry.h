// DiskRegistry: what a node knows of each disk it serves: geometry, the
// newest layout version and writer epoch. Every data request is admitted
// against it (docs/PROTOCOL.md):
//
//   request layout  < known  -> FAILED_PRECONDITION (client re-reads, retries)
//   request layout  > known  -> re-read the spec from ZooKeeper, then decide
//   write epoch     < known  -> PERMISSION_DENIED (the writer was fenced)
//   write epoch     > known  -> confirm in ZooKeeper, then remember it
//   disk unknown / deleting  -> NOT_FOUND
//
// Specs and writer records are watched so changes arrive without a request;
// the version check, not the watch, is what makes it correct. Thread-safe.
#ifndef UKAI_NODE_DISK_REGISTRY_H_
#define UKAI_NODE_DISK_REGISTRY_H_

#include <map>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/lifetime.h"
#include "meta/catalog.h"
#include "node/block_store.h"
#include "ukai.pb.h"

namespace ukai::node {

struct DiskGeometry {
  uint64_t size = 0;
  uint32_t block_size = 0;
  // The disk's write generation when the request was admitted: objects of
  // older generations are frozen by a snapshot.
  uint64_t generation = 0;
};

// Who sent a request, as far as admission cares (from its connection:
// BlockIo::CallerOf). The default checks nothing more than the header.
struct Caller {
  // Non-empty: a write is admitted only from the identity that holds the
  // disk's writer epoch (WriterRecord.identity, e.g. "frontend hv7"). A view
  // of the connection's peer name, valid for the request.
  absl::string_view writer;
  // Reads only of objects a snapshot froze (BlockIo checks; a backup identity).
  bool snapshots_only = false;
};

class DiskRegistry;

// A data request in progress, admitted under a layout version (AdmitIo).
// Fence waits for older ones to end. Move-only; releases on destruction.
class Admission {
 public:
  Admission() = default;
  Admission(Admission&& o) noexcept { *this = std::move(o); }
  Admission& operator=(Admission&& o) noexcept;
  ~Admission() { Release(); }
  const DiskGeometry& geometry() const { return geometry_; }

 private:
  friend class DiskRegistry;
  void Release();
  DiskRegistry* registry_ = nullptr;
  uint64_t disk_ = 0, version_ = 0;
  DiskGeometry geometry_;
};

class DiskRegistry {
 public:
  // Both must outlive the registry.
  DiskRegistry(meta::Catalog* catalog, BlockStore* store) : catalog_(catalog), store_(store) {}
  ~DiskRegistry() { guard_.Kill(); }

  // Loads every disk and drops stored data of disks that no longer exist
  // (deleted while this node was down).
  absl::Status Start();
  absl::StatusOr<DiskGeometry> Admit(const pb::IoHeader& hdr, bool write);
  // Admit, and count the request as in progress until the Admission goes.
  // A write from a caller with a writer identity that does not hold the
  // epoch is refused (PERMISSION_DENIED) like a fenced one.
  absl::StatusOr<Admission> AdmitIo(const pb::IoHeader& hdr, bool write, const Caller& who = {});
  // Makes sure this node turns away requests older than `layout_version`
  // from now on, and waits (up to `timeout`) until every request admitted
  // under an older version has finished. After OK, nothing done under an
  // older layout can still touch this node's copy of the disk: the step a
  // background copy needs before it pulls a block, and before it deletes a
  // replica (docs/PROTOCOL.md). FAILED_PRECONDITION if ZooKeeper does not have
  // that version yet, DEADLINE_EXCEEDED if old requests stay.
  absl::Status Fence(uint64_t id, uint64_t layout_version, absl::Duration timeout);
  // True if the disk exists and is not being deleted (re-reads ZooKeeper).
  absl::StatusOr<bool> Exists(uint64_t id);

 private:
  struct Disk {
    pb::DiskSpec spec;
    uint64_t epoch = 0;
    std::string writer;  // the identity that took `epoch`; empty in a plaintext cluster
    std::map<uint64_t, int> in_flight;  // admitted layout version -> requests
  };
  friend class Admission;
  absl::StatusOr<DiskGeometry> AdmitImpl(const pb::IoHeader& hdr, bool write, bool hold,
                                         const Caller& who);
  // The verdict on a request for `d`, known and current enough to decide.
  static absl::Status Decide(uint64_t id, const Disk& d, const pb::IoHeader& hdr, bool write,
                             const Caller& who);
  void Release(uint64_t id, uint64_t version);
  // Reads spec and writer record into disks_, arming the named watches.
  // NOT_FOUND if the disk is gone.
  enum class Arm { kNone, kSpec, kWriter, kBoth };
  absl::Status Refresh(uint64_t id, Arm arm);
  void OnGone(uint64_t id);
  // Lists the catalog's disk ids into listed_, and again whenever a disk is
  // created or deleted (one watch on the folder).
  absl::Status WatchList();
  // For a disk this node does not know yet: NOT_FOUND, without asking
  // ZooKeeper, when the listing says it does not exist (ids are never
  // reused, so an id below the newest listed one that is not listed is gone
  // for good); otherwise OK to look it up. Lookups of ids above the newest
  // (a disk created since the last listing) are paced, not refused.
  absl::Status CheckUnknown(uint64_t id);

  meta::Catalog* catalog_;
  BlockStore* store_;
  absl::Mutex mu_;  // a leaf: no ZooKeeper call or store I/O while held
  std::map<uint64_t, Disk> disks_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> listed_ ABSL_GUARDED_BY(mu_);  // the catalog's disk ids
  bool listed_ok_ ABSL_GUARDED_BY(mu_) = false;     // after Start
  absl::Time lookups_since_ ABSL_GUARDED_BY(mu_);   // unlisted lookups this second
  int lookups_ ABSL_GUARDED_BY(mu_) = 0;
  LifetimeGuard guard_;  // watches call back only while this lives
};

}  // namespace ukai::node

#endif  // UKAI_NODE_DISK_REGISTRY_H_
