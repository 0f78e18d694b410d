// Clock: the one way the project reads the time and waits. Code that paces,
// backs off or times out takes a Clock* through its constructor, so a test
// can run it on a FakeClock without sleeping.
//
// Thread safety: every Clock may be used from any number of threads.
#ifndef UKAI_COMMON_CLOCK_H_
#define UKAI_COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ukai {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
  // Returns once `d` has passed on this clock (at once for d <= 0).
  virtual void SleepFor(absl::Duration d) = 0;
};

// The system's clock (absl::Now, absl::SleepFor). Never destroyed.
Clock* SystemClock();

// For tests: time stands still until Advance, and SleepFor moves it on by
// the time slept instead of waiting, so a backoff of minutes costs nothing.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch()) : now_(start) {}
  absl::Time Now() override {
    absl::MutexLock l(&mu_);
    return now_;
  }
  void SleepFor(absl::Duration d) override {
    if (d > absl::ZeroDuration()) Advance(d);
  }
  void Advance(absl::Duration d) {
    absl::MutexLock l(&mu_);
    now_ += d;
    slept_ += d;
  }
  // All the time that SleepFor and Advance moved the clock on.
  absl::Duration slept() {
    absl::MutexLock l(&mu_);
    return slept_;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  absl::Duration slept_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ukai

#endif  // UKAI_COMMON_CLOCK_H_
