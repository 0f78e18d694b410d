// The failure policy's defaults (pb::FailurePolicy), header-only so that
// ukaictl shows the values the client acts on without linking the catalog.
#ifndef UKAI_META_FAILURE_POLICY_H_
#define UKAI_META_FAILURE_POLICY_H_

#include <cstdint>

#include "ukai.pb.h"

namespace ukai::meta {

// I/O short of its replicas is held this long by default before the guest
// gets EIO, at most kMaxHoldMs.
constexpr uint32_t kDefaultHoldMs = 30000;
constexpr uint32_t kMaxHoldMs = 3600 * 1000;

// The policy's hold time in milliseconds (kDefaultHoldMs for 0).
inline uint32_t HoldMs(const pb::FailurePolicy& f) {
  return f.hold_ms() ? f.hold_ms() : kDefaultHoldMs;
}

// The fewest replicas a degrade write must reach (min_replicas; 0 means 1).
inline uint32_t MinReplicas(const pb::FailurePolicy& f) {
  return f.min_replicas() ? f.min_replicas() : 1;
}

}  // namespace ukai::meta

#endif  // UKAI_META_FAILURE_POLICY_H_
