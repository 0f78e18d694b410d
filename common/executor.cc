#include "common/executor.h"

#include <pthread.h>

#include <algorithm>
#include <memory>

namespace ukai {

Executor::Executor(std::string name, size_t max_threads, size_t max_queued)
    : name_(std::move(name)),
      max_threads_(std::max<size_t>(1, max_threads)),
      max_queued_(max_queued) {}

Executor::~Executor() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    threads.swap(threads_);  // no thread starts once stopping_ is set
  }
  for (auto& t : threads) t.join();
}

size_t Executor::threads() const {
  absl::MutexLock l(&mu_);
  return threads_.size();
}

bool Executor::TrySchedule(std::function<void()> task) {
  absl::MutexLock l(&mu_);
  if (stopping_ || queue_.size() >= max_queued_) return false;
  queue_.push_back(std::move(task));
  if (queue_.size() > idle_ && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { Work(); });
    pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
  }
  return true;
}

void Executor::Work() {
  mu_.Lock();
  while (true) {
    ++idle_;
    mu_.Await(absl::Condition(this, &Executor::HasWorkOrStop));
    --idle_;
    if (queue_.empty()) break;  // stopping, and nothing left to run
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    mu_.Unlock();
    task();
    task = nullptr;  // what it holds goes before the lock is taken again
    mu_.Lock();
  }
  mu_.Unlock();
}

namespace {

// What a ParallelFor shares with its helpers. A helper that starts after
// the caller closed it does nothing, so the caller waits only for helpers
// that got going, and the executor may be the caller's own.
struct Fanout {
  absl::Mutex mu;
  size_t next ABSL_GUARDED_BY(mu) = 0;
  size_t active ABSL_GUARDED_BY(mu) = 0;
  bool closed ABSL_GUARDED_BY(mu) = false;

  // Runs the calls not yet taken, one at a time.
  void Drain(size_t n, const std::function<void(size_t)>& fn) {
    while (true) {
      size_t i;
      {
        absl::MutexLock l(&mu);
        if (next >= n) return;
        i = next++;
      }
      fn(i);
    }
  }
};

}  // namespace

void ParallelFor(Executor* executor, size_t n, size_t width,
                 const std::function<void(size_t)>& fn) {
  auto fan = std::make_shared<Fanout>();
  const size_t helpers =
      executor == nullptr ? 0 : std::min(n, std::max<size_t>(1, width)) - (n > 0);
  for (size_t k = 0; k < helpers; ++k) {
    const bool queued = executor->TrySchedule([fan, n, &fn] {
      {
        absl::MutexLock l(&fan->mu);
        if (fan->closed) return;  // the caller did it all: `fn` may be gone
        ++fan->active;
      }
      fan->Drain(n, fn);
      absl::MutexLock l(&fan->mu);
      --fan->active;
    });
    if (!queued) break;  // the caller does the rest
  }
  fan->Drain(n, fn);
  absl::MutexLock l(&fan->mu);
  fan->closed = true;
  fan->mu.Await(absl::Condition(
      +[](Fanout* f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(f->mu) { return f->active == 0; }, fan.get()));
}

}  // namespace ukai
