// JobRunner: every node runs one. It claims jobs nobody runs (an ephemeral
// <root>/jobs/<id>/runner znode, so a job whose runner died is claimed again
// once ZooKeeper notices) and runs each (RunJob, control/jobs.h) on a
// thread of its own until it ends. Thread-safe.
#ifndef UKAI_CONTROL_JOB_RUNNER_H_
#define UKAI_CONTROL_JOB_RUNNER_H_

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "control/job_context.h"
#include "meta/catalog.h"

namespace ukai::control {

class JobRunner {
 public:
  // `env` says who runs the jobs and with what; its pointers outlive this.
  explicit JobRunner(JobEnv env) : env_(std::move(env)) {}
  ~JobRunner() { Stop(); }
  void Start();
  // Stops claiming, asks running jobs to stop at their next step (they stay
  // RUNNING in ZooKeeper for another node) and waits for them.
  void Stop();

 private:
  void Loop();
  // The RUNNING jobs, reading only jobs not already seen ended.
  std::vector<pb::JobRecord> RunningJobs();
  static constexpr absl::Duration kPruneEvery = absl::Minutes(1);
  void Reap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Claim(const pb::JobRecord& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Still ours: not stopping, and the runner znode still names this node.
  bool ShouldStop(const std::string& id);

  const JobEnv env_;
  absl::Notification stopping_;
  std::thread loop_;
  absl::Mutex mu_;
  struct Running {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> ended_;  // the loop's: jobs seen finished
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_JOB_RUNNER_H_
