// Rollback: makes a disk read as one of its snapshots again, chunk by
// chunk (`ukaictl snap rollback`; docs/ARCHITECTURE.md, "Snapshots"). Each
// block whose current state differs from the snapshot's gets, at the
// rollback's generation W, a copy of the snapshot's object made on its
// replicas' nodes (or no object: zeros; or, on a clone, the parent again),
// then one compare-and-set per chunk switches the pointers, keeping what
// the snapshots read. The writer epoch is taken first, so a writer still
// running (with --force) is fenced. A block at W is done: a rollback that
// died is finished by running it again.
//
//   Begin ─▶ per chunk: ChangesOf ─▶ CopyUps ─▶ CheckCopied ─▶ SwitchChunk
//         ─▶ End (the disk unmarked, every node fenced at the new layout)
//
// It runs inside the admin call, not as a job. One Rollback serves one
// run; not thread-safe.
#ifndef UKAI_CONTROL_ROLLBACK_H_
#define UKAI_CONTROL_ROLLBACK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/executor.h"
#include "control/node_peers.h"
#include "meta/catalog.h"
#include "meta/generations.h"
#include "ukai.pb.h"

namespace ukai::control {

class Rollback {
 public:
  // `executor` (may be null) runs the copies several at once.
  Rollback(meta::Catalog* catalog, NodePeers* nodes, Executor* executor)
      : catalog_(catalog), nodes_(nodes), executor_(executor) {}

  // Disk `disk` rolled back to snapshot `snap`: its spec after. Refused
  // (FAILED_PRECONDITION) while the disk is open for writing, unless
  // `force`; UNAVAILABLE if a block could be copied on no replica (the disk
  // stays marked; run it again); ABORTED if the disk changed meanwhile.
  absl::StatusOr<pb::DiskSpec> Run(const std::string& disk, const std::string& snap, bool force);

 private:
  struct Change {
    uint64_t block;
    meta::BlockView target;  // what the snapshot reads
    pb::BlockPtr was;
    std::vector<std::string> failed;  // replicas the copy failed on
  };
  absl::Status Begin(const std::string& snap, bool force);
  std::vector<Change> ChangesOf(uint64_t c, const pb::BlockChunk& chunk) const;
  // Every CLEAN replica of every changed block copies at once.
  absl::Status CopyUps(std::vector<Change>* changes);
  absl::Status CheckCopied(const std::vector<Change>& changes) const;
  absl::Status SwitchChunk(uint64_t c, const std::vector<Change>& changes);
  absl::StatusOr<pb::DiskSpec> End();

  meta::Catalog* const catalog_;
  NodePeers* const nodes_;
  Executor* const executor_;
  std::string name_, snap_;
  uint64_t id_ = 0, epoch_ = 0;
  pb::DiskSpec spec_;
  uint64_t gen_ = 0, at_ = 0;  // the rollback's generation; the snapshot's
  bool clone_ = false;
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_ROLLBACK_H_
