// ScrubJob: the SCRUB job (docs/ARCHITECTURE.md, "Scrub"). It compares
// every allocated block's CLEAN replicas page by page (NodePeers::Checksums):
// a replica with a page failing its checksum is marked STALE (never the last
// clean one) and a repair is started once the scrub ends; pages that differ
// between sound replicas are reported. Progress and findings go to the job
// record a batch at a time, so a runner that dies is followed by one that
// goes on from the last batch. One ScrubJob serves one run; not thread-safe.
#ifndef UKAI_CONTROL_SCRUB_JOB_H_
#define UKAI_CONTROL_SCRUB_JOB_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/job_context.h"
#include "ukai.pb.h"

namespace ukai::control {

class ScrubJob {
 public:
  ScrubJob(JobContext* ctx, pb::JobRecord* job) : ctx_(ctx), job_(job) {}
  // DONE or CANCELLED (OK), ABORTED when stopped, another error otherwise.
  absl::Status Run();

 private:
  // What one block's check found: the replicas that answered, and those
  // with a page failing its checksum.
  struct Verdict {
    std::set<std::string> answered, rotten;
  };
  absl::Status CountBlocks(const std::map<uint64_t, pb::BlockChunk>& chunks, uint64_t nblocks);
  // Blocks [first, last) of chunk `c`, as the pointers are now.
  absl::Status ScrubBatch(uint64_t c, uint64_t first, uint64_t last);
  absl::Status ScrubBlock(uint64_t c, uint64_t b, const pb::BlockPtr& ptr,
                          const std::set<std::string>& live);
  // One object of block `b` on every CLEAN live replica.
  void CheckObject(uint64_t b, uint64_t gen, const pb::BlockPtr& ptr,
                   const std::set<std::string>& live, Verdict* verdict);
  absl::StatusOr<pb::ChecksumsResponse> Checksums(const std::string& node, uint64_t b,
                                                  uint64_t gen);
  // Sound replicas whose pages differ: looked at once more, then reported.
  void CompareSound(uint64_t b, uint64_t gen, const std::vector<std::string>& sound,
                    std::map<std::string, pb::ChecksumsResponse>& sums);
  // Rotten replicas go STALE if a sound one is still CLEAN then.
  absl::Status MarkRotten(uint64_t c, uint64_t b, const std::vector<std::string>& rotten,
                          const std::vector<std::string>& sound);
  // Adds the batch's counts to the record and moves the cursor to `next`.
  absl::Status Save(uint64_t next);
  absl::Status Finish();

  JobContext* const ctx_;
  pb::JobRecord* const job_;
  pb::IoHeader hdr_;  // the layout the nodes are asked under
  // Counted per batch, then added to the record with the cursor.
  uint64_t checked_ = 0, bad_ = 0, mismatched_ = 0, done_ = 0;
  std::vector<std::string> findings_;
  bool marked_any_ = false;
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_SCRUB_JOB_H_
