// RelocateJob: runs a relocation (JobRecord RELOCATE) or a repair (REPAIR)
// to its end, from whatever state ZooKeeper holds, so any node can pick up
// a job whose runner died. Blocks move a batch at a time (RelocationBatch,
// control/relocation_batch.h); per batch (docs/ARCHITECTURE.md,
// "Relocation"):
//
//   A  the new replicas join as SYNCING (layout V1): writers send them every
//      write, tracked, so the copy never overwrites it;
//   B  every involved node is fenced at V1: no write that skips the new
//      replicas can still land on the sources;
//   C  each new replica pulls the object from a clean source, then syncs (the
//      old replicas, which held the flushed writes durably, are about to go);
//   D  the clean-up owed is written to the job, then in one chunk update the
//      new replicas become CLEAN and the old ones leave (layout V2), refused
//      if a new replica went STALE meanwhile (the batch is copied again);
//   E  every involved node is fenced at V2: no read or write under V1 is left;
//   F  the new replicas forget their marks, the old ones drop their data,
//      and the job's cursor moves on.
//
// A crash anywhere leaves ZooKeeper in a state the next run continues from:
// the pending list of D, the replica states of A and D, and the cursor of F.
// Cancelling stops at the next batch boundary (or retry), takes back any
// replica still SYNCING, and restores the disk's placement policy; blocks
// already moved stay moved, every block readable throughout.
//
// A repair runs the same steps with PlanRepair's targets
// (control/repair_plan.h). One RelocateJob serves one run; not thread-safe.
#ifndef UKAI_CONTROL_RELOCATE_JOB_H_
#define UKAI_CONTROL_RELOCATE_JOB_H_

#include <cstdint>
#include <map>

#include "absl/status/status.h"
#include "control/job_context.h"
#include "ukai.pb.h"

namespace ukai::control {

class RelocateJob {
 public:
  // `job` is the record as read; the run keeps it current.
  RelocateJob(JobContext* ctx, pb::JobRecord* job) : ctx_(ctx), job_(job) {}

  // DONE or CANCELLED (OK), ABORTED when stopped or crashed, another error
  // when the job cannot go on (RunJob records it FAILED).
  absl::Status Run();

  // E and F: fences every live node the job's pending clean-up names at the
  // disk's current layout, then does the clean-up and clears the list.
  // Also what a dead runner owed, done first by the next one.
  absl::Status FinishPending();

 private:
  // Fills the job's progress estimate (bytes and blocks to move).
  absl::Status EstimateTotals(const std::map<uint64_t, pb::BlockChunk>& chunks,
                              const pb::DiskSpec& spec);
  absl::Status EstimateRepair(const std::map<uint64_t, pb::BlockChunk>& chunks,
                              const pb::DiskSpec& spec, uint64_t blocks);
  // Replicas a relocation adds to a block, as the first block shows.
  uint64_t ReplicasGained(const std::map<uint64_t, pb::BlockChunk>& chunks,
                          const std::vector<pb::NodeInfo>& nodes) const;
  // The pending clean-up of a dead runner, retried until done.
  absl::Status FinishOwed();
  // Moves blocks [first, first + n) of chunk `c`, retrying until done;
  // `copied` says whether any held data.
  absl::Status MoveRetrying(uint64_t c, uint64_t first, uint64_t n, bool* copied);
  // Takes back SYNCING replicas of the current batch and ends the job.
  absl::Status Cancel(uint64_t c, uint64_t first, uint64_t n);

  JobContext* const ctx_;
  pb::JobRecord* const job_;
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_RELOCATE_JOB_H_
