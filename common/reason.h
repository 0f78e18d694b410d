// Reason: why a node refused a request, where a client acts on the why and
// not only on the canonical code. FAILED_PRECONDITION alone says too little
// (a stale layout means "re-read and retry", a read-only volume means
// "never"), so each signal is its own typed reason:
//
//   kStaleLayout  the request's layout is older than the node's: re-read
//                 the layout from ZooKeeper and try again (FAILED_PRECONDITION)
//   kFenced       the writer epoch was taken by another host, or was never
//                 taken: this host writes no more (PERMISSION_DENIED)
//   kReadOnly     a write to a snapshot or a read-only open (FAILED_PRECONDITION)
//   kWouldBlock   an operation asked not to wait would have to (a read of
//                 pages not in memory): call again where waiting is fine
//                 (RESOURCE_EXHAUSTED)
//
// The reason travels with the status everywhere: as a payload on
// absl::Status (Annotate keeps it), in the high byte of the block I/O
// header's status field (the low byte is the code; docs/PROTOCOL.md), and
// in grpc::Status's error_details (common/grpc_status.h).
#ifndef UKAI_COMMON_REASON_H_
#define UKAI_COMMON_REASON_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ukai {

enum class Reason : uint8_t {
  kNone = 0,
  kStaleLayout = 1,
  kFenced = 2,
  kReadOnly = 3,
  kWouldBlock = 4,
};
inline constexpr uint8_t kMaxReason = 4;

// `s` with reason `r` attached (an OK status stays OK and carries none).
absl::Status WithReason(absl::Status s, Reason r);
// The reason attached to `s`; kNone if none (or one this build does not know).
Reason ReasonOf(const absl::Status& s);

absl::Status StaleLayoutError(absl::string_view msg);
absl::Status FencedError(absl::string_view msg);
absl::Status ReadOnlyError(absl::string_view msg);
// What an operation asked not to wait returns when it would have to.
absl::Status WouldBlock();

inline bool IsStaleLayout(const absl::Status& s) { return ReasonOf(s) == Reason::kStaleLayout; }
inline bool IsFenced(const absl::Status& s) { return ReasonOf(s) == Reason::kFenced; }
inline bool IsReadOnly(const absl::Status& s) { return ReasonOf(s) == Reason::kReadOnly; }
inline bool IsWouldBlock(const absl::Status& s) { return ReasonOf(s) == Reason::kWouldBlock; }

// The block I/O header's status field: the code in the low byte, the reason
// in the high one; and back (an unknown reason reads as kNone).
uint16_t EncodeWireStatus(const absl::Status& s);
absl::Status DecodeWireStatus(uint16_t status, absl::string_view message);

}  // namespace ukai

#endif  // UKAI_COMMON_REASON_H_
