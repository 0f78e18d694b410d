// FlattenJob: the FLATTEN job (docs/ARCHITECTURE.md, "Flatten"). Block by
// block, in batches within a chunk: every block of the clone that still
// reads through to its parent gets an object of its own at the clone's
// generation, filled on each of its CLEAN replicas from the nearest replica
// of the ancestor object it reads (FillRequest: only where the clone's own
// first write has not made it meanwhile), then one compare-and-set per batch
// switches the pointers. When every block is its own, the parent link goes
// (Catalog::DetachParent) and the parent's snapshot may be deleted.
//
// The VM keeps writing throughout (its copy-ups move the layout under the
// fills, which then fill again at the new one); progress is in the job
// record as the bytes go, a batch that cannot finish now is tried again
// with a backoff, and a runner that dies is followed by another that starts
// again at the first batch not switched. Per batch:
//
//   ResolveSources ─▶ (no chunk yet: AllocateChunk, batch again)
//     ─▶ FillAll ─▶ SwitchBatch ─▶ Unswitched ─▶ cursor on
//
// One FlattenJob serves one run; not thread-safe.
#ifndef UKAI_CONTROL_FLATTEN_JOB_H_
#define UKAI_CONTROL_FLATTEN_JOB_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "control/job_context.h"
#include "meta/catalog.h"
#include "ukai.pb.h"

namespace ukai::control {

class FlattenJob {
 public:
  FlattenJob(JobContext* ctx, pb::JobRecord* job) : ctx_(ctx), job_(job) {}
  // DONE or CANCELLED (OK), ABORTED when stopped or crashed, another error
  // otherwise.
  absl::Status Run();

 private:
  // Where a clone's block reads from: an ancestor's object, or nothing (zeros).
  struct Source {
    bool zeros = true;
    uint64_t disk = 0, layout = 0, generation = 0;
    std::vector<std::string> replicas;  // CLEAN ones
  };
  // One batch: blocks [first, last) of chunk c, and what filling them found.
  struct Batch {
    uint64_t c = 0, first = 0, last = 0, generation = 0;
    pb::DiskSpec spec;
    std::optional<meta::VersionedChunk> chunk;
    std::map<uint64_t, Source> sources;                   // the blocks that still read through
    std::map<uint64_t, std::vector<std::string>> failed;  // replicas not filled
    std::map<uint64_t, uint64_t> bytes_of;                // copied, per block
    uint64_t bytes = 0, shown = 0;                        // copied; of it, in the job record
    absl::Time shown_at;
    // Layouts to fill at, by disk: as read, until a node says they moved.
    std::map<uint64_t, uint64_t> layout_of;
  };
  enum class Next { kSameBatch, kNextBatch, kNoParent };

  // Records this runner and the totals; takes off what an earlier runner
  // showed of a batch it did not switch.
  absl::Status Begin(const pb::DiskSpec& spec);
  // CANCELLED recorded (and true) if someone asked the job to stop.
  absl::StatusOr<bool> Cancelled(uint64_t first);
  absl::StatusOr<Next> RunBatch(uint64_t first);
  // The batch filled and switched; the cursor moves past it.
  absl::StatusOr<Next> EndBatch(Batch* batch);
  absl::Status ReadNodes();
  absl::Status ResolveSources(Batch* batch);
  absl::StatusOr<Source> ResolveInParents(pb::ParentRef parent, uint32_t block_size, uint64_t b);
  // The clone never wrote here: its blocks get pointers (inherited) first,
  // placed as the clone's placement says.
  absl::Status AllocateChunk(const Batch& batch);
  // Fills every CLEAN replica of every block with data; a status that is
  // not OK is no replica's fault and means the whole batch again.
  absl::Status FillAll(Batch* batch);
  absl::StatusOr<uint64_t> FillReplica(Batch* batch, uint64_t b, const Source& src,
                                       const std::string& node);
  // The fill of block `b` from `src` at the layouts known now.
  pb::FillRequest FillRequestFor(Batch* batch, uint64_t b, const Source& src);
  absl::Status RefreshLayouts(Batch* batch, uint64_t source_disk, pb::FillRequest* req);
  absl::Status ShowProgress(Batch* batch);
  // What the job record shows of the batch comes off: it is copied again.
  absl::Status TakeBack(const Batch& batch);
  // Each block still inherited, at the generation filled, becomes the
  // clone's own; `moved` if a snapshot of the clone came meanwhile.
  absl::Status SwitchBatch(const Batch& batch, bool* moved);
  // Bytes copied to blocks of the batch still inherited (with data) after
  // the switch; `left` if there are any.
  absl::Status Unswitched(const Batch& batch, bool* left, uint64_t* bytes);
  absl::Status Finish();

  JobContext* const ctx_;
  pb::JobRecord* const job_;
  std::map<std::string, std::string> io_of_, site_of_;  // by node id
  std::vector<pb::NodeInfo> nodes_;
  uint64_t nblocks_ = 0;  // the clone's size when the run began
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_FLATTEN_JOB_H_
