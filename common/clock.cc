#include "common/clock.h"

#include "absl/time/clock.h"

namespace ukai {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  void SleepFor(absl::Duration d) override {
    if (d > absl::ZeroDuration()) absl::SleepFor(d);
  }
};

}  // namespace

Clock* SystemClock() {
  static auto* clock = new RealClock();  // never destroyed: threads may outlive main
  return clock;
}

}  // namespace ukai
