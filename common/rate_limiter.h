// RateLimiter: paces a byte stream to a rate (bytes per second) by making
// callers wait their turn. Shared by any number of threads; each waits for
// its own bytes, so several copies under one limit share it fairly enough.
#ifndef UKAI_COMMON_RATE_LIMITER_H_
#define UKAI_COMMON_RATE_LIMITER_H_

#include <algorithm>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace ukai {

class RateLimiter {
 public:
  // 0: no limit. After an idle spell, up to `burst` worth of bytes passes at once.
  explicit RateLimiter(uint64_t bytes_per_second, absl::Duration burst = absl::Milliseconds(100),
                       Clock* clock = SystemClock())
      : rate_(bytes_per_second), burst_(burst), clock_(clock) {}
  // Waits until `bytes` more fit under the rate: the caller's bytes take the
  // next free slot, and it waits for the slot's start.
  void Acquire(uint64_t bytes) {
    if (rate_ == 0) return;
    absl::Time start;
    {
      absl::MutexLock l(&mu_);
      absl::Time now = clock_->Now();
      next_ = std::max(next_, now - burst_);
      start = next_;
      next_ += absl::Seconds(static_cast<double>(bytes) / static_cast<double>(rate_));
    }
    clock_->SleepFor(start - clock_->Now());
  }
  uint64_t rate() const { return rate_; }

 private:
  const uint64_t rate_;
  const absl::Duration burst_;
  Clock* const clock_;
  absl::Mutex mu_;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace ukai

#endif  // UKAI_COMMON_RATE_LIMITER_H_
