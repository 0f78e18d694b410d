// Executor: a bounded pool of threads. Work is queued up to `max_queued`
// tasks and run by at most `max_threads` threads, started as the queue
// needs them and kept until the executor goes; past the queue's limit a task
// is refused (TrySchedule returns false), never queued without bound. Every
// fan-out and every hand-off off a thread that must not block (a transport
// reader, a gRPC handler) goes through one, so a storm of failures costs a
// fixed number of threads.
//
// Thread safety: TrySchedule may be called from any thread, tasks included.
// The destructor refuses new tasks, lets the queued ones run and joins.
#ifndef UKAI_COMMON_EXECUTOR_H_
#define UKAI_COMMON_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ukai {

class Executor {
 public:
  // `name` (at most 15 characters show) names the threads in ps and gdb.
  Executor(std::string name, size_t max_threads, size_t max_queued);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `task` to run on a pool thread; false, and `task` dropped
  // unrun, if the queue is full or the executor is being destroyed.
  bool TrySchedule(std::function<void()> task);

  size_t threads() const;

 private:
  void Work();
  bool HasWorkOrStop() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || stopping_;
  }

  const std::string name_;
  const size_t max_threads_, max_queued_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

// Calls fn(i) for every i in [0, n), at most `width` calls at once: on
// `executor`'s threads where it takes the work and on the caller's thread
// in any case, so it never waits for a pool that is full or busy (it may
// be called from a task of the same executor). Returns when every call has
// returned. A null `executor` runs them all on the caller's thread.
void ParallelFor(Executor* executor, size_t n, size_t width, const std::function<void(size_t)>& fn);

}  // namespace ukai

#endif  // UKAI_COMMON_EXECUTOR_H_
