// What every job run shares, whatever its kind (relocate, repair, scrub,
// flatten): who runs it and what with (JobEnv), and the run's own state
// (JobContext): stopping, cancelling, pacing, backing off, and the crash
// points tests use to kill a runner at a named step.
//
// A JobContext serves one run of one job and is then thrown away. Stop,
// CheckCancel, CrashPoint and Pace may be called from the run's fan-out
// threads; Retry and ResetBackoff only from the thread that runs the job.
#ifndef UKAI_CONTROL_JOB_CONTEXT_H_
#define UKAI_CONTROL_JOB_CONTEXT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/executor.h"
#include "common/rate_limiter.h"
#include "control/node_peers.h"
#include "meta/catalog.h"
#include "ukai.pb.h"

namespace ukai::control {

struct JobOptions {
  uint32_t batch_blocks = 32;    // blocks switched per chunk update
  uint32_t parallel_copies = 4;  // block copies in flight at once
  absl::Duration retry_min = absl::Milliseconds(200), retry_max = absl::Seconds(5);
  // Tests: called at each named step; returning true makes the run stop
  // right there as if the runner had died (ABORTED).
  std::function<bool(const std::string& point)> crash_at;
};

// Who runs jobs and what they work with; none of it owned.
struct JobEnv {
  std::string self;        // the node id recorded as the job's runner
  meta::Catalog* catalog;  // the cluster's metadata
  NodePeers* peers;        // the storage nodes
  Executor* executor;      // fan-outs (block copies, syncs); null: one at a time
  Clock* clock = SystemClock();
  JobOptions options;
  meta::JobRetention retention;  // finished jobs pruned by every runner
};

class JobContext {
 public:
  // `stop` says when the runner must let go (the job stays RUNNING);
  // `bandwidth_bps` (0: none) paces the whole job's bytes.
  JobContext(const JobEnv& env, std::function<bool()> stop, uint64_t bandwidth_bps);

  const JobEnv& env() const { return env_; }
  meta::Catalog* catalog() const { return env_.catalog; }
  NodePeers* peers() const { return env_.peers; }
  const JobOptions& options() const { return env_.options; }

  // ABORTED ("stopping") once the runner must let go.
  absl::Status CheckStop() const;
  // CANCELLED once someone asked job `id` to stop; cancel_seen() from then on.
  absl::Status CheckCancel(const std::string& id);
  bool cancel_seen() const { return cancel_seen_; }
  // ABORTED if the test's crash_at says the runner dies at `point` (and
  // crashed() from then on); OK otherwise.
  absl::Status CrashPoint(const std::string& point);
  bool crashed() const { return crashed_; }
  // Waits until `bytes` more fit under the job's bandwidth.
  void Pace(uint64_t bytes) { pace_.Acquire(bytes); }

  // Records `why` in the job as the reason it is retrying, then waits the
  // backoff (from retry_min, doubling up to retry_max). The status of the
  // record's update: NOT_FOUND if the job is gone.
  absl::Status Retry(pb::JobRecord* job, const absl::Status& why);
  // After progress: the next Retry waits retry_min again.
  void ResetBackoff() { backoff_ = env_.options.retry_min; }

  // Fences every live node of `nodes` at `layout` of `disk`. A node that is
  // down serves nothing; it reads the current layout before it serves again.
  absl::Status FenceAll(uint64_t disk, uint64_t layout, const std::set<std::string>& nodes);

 private:
  const JobEnv& env_;
  const std::function<bool()> stop_;
  RateLimiter pace_;
  absl::Duration backoff_;
  absl::Mutex crash_mu_;  // crash_at is the test's and runs one at a time
  std::atomic<bool> crashed_{false}, cancel_seen_{false};
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_JOB_CONTEXT_H_
