#include "common/byte_budget.h"

namespace ukai {

bool ByteBudget::Take(uint64_t n, absl::Time deadline) {
  absl::MutexLock l(&mu_);
  if (n > limit_) return false;
  auto room = [this, n]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || used_ + n <= limit_; };
  mu_.AwaitWithDeadline(absl::Condition(&room), deadline);
  if (closed_ || used_ + n > limit_) return false;
  used_ += n;
  return true;
}

void ByteBudget::Give(uint64_t n) {
  absl::MutexLock l(&mu_);
  used_ = n > used_ ? 0 : used_ - n;
}

void ByteBudget::Close() {
  absl::MutexLock l(&mu_);
  closed_ = true;
}

uint64_t ByteBudget::used() const {
  absl::MutexLock l(&mu_);
  return used_;
}

}  // namespace ukai
