// What the parts of VolumeImpl (volume_impl.cc, volume_cow.cc,
// volume_views.cc, volume_flush.cc) agree on: how many tries a request
// gets, what a node's refusal means, how long a failure policy holds I/O.
#ifndef UKAI_CLIENT_VOLUME_RULES_H_
#define UKAI_CLIENT_VOLUME_RULES_H_

#include <algorithm>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/reason.h"

namespace ukai::client {

inline constexpr int kMaxAttempts = 8;

// A node's refusals: IsStaleLayout (read ZooKeeper, try again), IsFenced
// (another host took the writer epoch: this one writes no more).
using ::ukai::IsFenced;
using ::ukai::IsStaleLayout;

inline absl::Time Deadline(int ms) { return absl::Now() + absl::Milliseconds(ms); }

// Pauses between tries of I/O the failure policy holds: 20 ms, doubling to
// 1 s, until the hold time is up.
// The hold time counts from when the I/O began, its first try included.
class Hold {
 public:
  Hold(absl::Time began, uint32_t ms) : until_(began + absl::Milliseconds(ms)) {}
  // A try's deadline: the RPC deadline, cut at the end of the hold.
  absl::Time Deadline(int rpc_ms) const {
    const absl::Time now = absl::Now();
    return std::min(now + absl::Milliseconds(rpc_ms),
                    std::max(until_, now + absl::Milliseconds(100)));
  }
  // Sleeps before the next try (the last one at the end of the hold time);
  // false, at once, when the hold time is up.
  bool Wait() {
    const absl::Time now = absl::Now();
    if (now >= until_) return false;
    absl::SleepFor(std::min(pause_, until_ - now));
    pause_ = std::min(pause_ * 2, absl::Seconds(1));
    return true;
  }

 private:
  const absl::Time until_;
  absl::Duration pause_ = absl::Milliseconds(20);
};

}  // namespace ukai::client

#endif  // UKAI_CLIENT_VOLUME_RULES_H_
