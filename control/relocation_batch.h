// RelocationBatch: one attempt at moving blocks [first, first + n) of one
// chunk through steps A to D of control/relocate_job.h, one method per
// step, in the order of that diagram:
//
//   Plan ─▶ DropStaleTargets ─▶ JoinAsSyncing (A) ─▶ FenceInvolved (B)
//        ─▶ ListCopies ─▶ SkipEmpty ─▶ PullAll ─▶ SyncTargets (C)
//        ─▶ RecordPending ─▶ Switch (D)
//
// E and F are RelocateJob::FinishPending, run after Move returns OK (and by
// the next runner if this one dies). A batch is used once and then thrown
// away; Move runs on one thread, PullAll fans its copies out over the job's
// executor.
#ifndef UKAI_CONTROL_RELOCATION_BATCH_H_
#define UKAI_CONTROL_RELOCATION_BATCH_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "control/job_context.h"
#include "ukai.pb.h"

namespace ukai::control {

class RelocationBatch {
 public:
  RelocationBatch(JobContext* ctx, pb::JobRecord* job, uint64_t chunk, uint64_t first, uint64_t n)
      : ctx_(ctx),
        job_(job),
        disk_(job->disk_id()),
        chunk_index_(chunk),
        first_(first),
        last_(first + n),
        repair_(job->kind() == pb::JobRecord::REPAIR) {}

  // Steps A to D. OK also when an earlier run already moved the batch.
  // `copied_any` says whether any block held data to copy (an unwritten
  // region moves by pointer updates alone).
  absl::Status Move(bool* copied_any);

 private:
  // One object to pull: `dst` from the first of `sources` that answers.
  struct Pull {
    uint64_t block, generation;
    std::string dst;
    std::vector<std::string> sources;  // CLEAN and up, same site first
    std::string used;                  // the source it came from
  };

  // The cluster as of now: spec, nodes, liveness and the chunk.
  absl::Status ReadState();
  // targets_, kept_ and involved_; `all_done` if every block is already
  // where it should be.
  absl::Status Plan(bool* all_done);
  // A target holding a stale copy starts over from nothing: fenced, then
  // dropped, once a clean replica is up to copy from.
  absl::Status DropStaleTargets();
  absl::Status JoinAsSyncing();  // A
  absl::Status FenceInvolved();  // B
  absl::Status ListCopies();     // C: the objects each new replica pulls
  void SkipEmpty();              // C: ... less those no source holds data of
  absl::Status PullAll();        // C: several at once
  absl::Status PullOne(Pull* pull, uint64_t per_copy_bps);
  absl::Status SyncTargets();    // C: durable before they replace the old
  absl::Status RecordPending();  // D: the clean-up the switch will owe
  absl::Status Switch();         // D: the new replicas CLEAN, the old gone
  // The switch's chunk change: false with bad_source_ set if a source went
  // stale during the copy (its copies go STALE too).
  absl::StatusOr<bool> SwitchChunk(pb::BlockChunk* ch);
  bool SourceWentStale(pb::BlockChunk* ch);

  const pb::BlockPtr& PtrOf(uint64_t b) const;
  pb::BlockPtr* MutablePtr(pb::BlockChunk* ch, uint64_t b) const;
  std::map<std::string, std::string> SiteOf() const;

  JobContext* const ctx_;
  pb::JobRecord* const job_;
  const uint64_t disk_, chunk_index_, first_, last_;  // last_ exclusive
  const bool repair_;

  pb::DiskSpec spec_;
  uint64_t nblocks_ = 0;  // the disk's size when the batch began
  std::vector<pb::NodeInfo> nodes_;
  std::set<std::string> live_;
  pb::BlockChunk chunk_;
  // targets_[b]: the replicas block b ends with, CLEAN; kept_[b]: those a
  // repair leaves as they are (on nodes that are down).
  std::map<uint64_t, std::vector<std::string>> targets_;
  std::map<uint64_t, std::vector<pb::Replica>> kept_;
  std::set<std::string> involved_;
  uint64_t layout_v1_ = 0;
  uint64_t nblocks_now_ = 0;  // the size once B fenced every old writer
  std::vector<Pull> pulls_;
  std::vector<size_t> to_copy_;  // the pulls with data to copy
  std::atomic<uint64_t> copied_bytes_{0};
  std::string bad_source_;

  absl::Mutex mu_;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);  // the first thing that stops PullAll
  std::set<std::string> failed_sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_RELOCATION_BATCH_H_
