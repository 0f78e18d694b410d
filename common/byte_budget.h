// ByteBudget: a count of bytes that many holders take from one limit,
// waiting for room when it is used up; how a server bounds the memory its
// peers make it hold. Thread-safe.
#ifndef UKAI_COMMON_BYTE_BUDGET_H_
#define UKAI_COMMON_BYTE_BUDGET_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ukai {

class ByteBudget {
 public:
  explicit ByteBudget(uint64_t limit) : limit_(limit) {}

  // Takes `n` bytes once they are free, waiting until `deadline` at most.
  // False, taking nothing, when the deadline passed first, when the budget
  // was closed, or when `n` exceeds the whole limit.
  bool Take(uint64_t n, absl::Time deadline);
  // Gives back `n` bytes taken earlier.
  void Give(uint64_t n);
  // Wakes every waiter with false, and fails every later Take.
  void Close();

  uint64_t limit() const { return limit_; }
  uint64_t used() const;

 private:
  const uint64_t limit_;
  mutable absl::Mutex mu_;
  uint64_t used_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ukai

#endif  // UKAI_COMMON_BYTE_BUDGET_H_
