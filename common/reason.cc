#include "common/reason.h"

#include "absl/strings/cord.h"

namespace ukai {
namespace {

constexpr char kReasonUrl[] = "type.ukai.dev/ukai.Reason";

}  // namespace

absl::Status WithReason(absl::Status s, Reason r) {
  if (s.ok() || r == Reason::kNone) return s;
  s.SetPayload(kReasonUrl, absl::Cord(std::string(1, static_cast<char>(r))));
  return s;
}

Reason ReasonOf(const absl::Status& s) {
  auto p = s.GetPayload(kReasonUrl);
  if (!p.has_value() || p->size() != 1) return Reason::kNone;
  const uint8_t v = static_cast<uint8_t>((*p)[0]);
  return v <= kMaxReason ? static_cast<Reason>(v) : Reason::kNone;
}

absl::Status StaleLayoutError(absl::string_view msg) {
  return WithReason(absl::FailedPreconditionError(msg), Reason::kStaleLayout);
}
absl::Status FencedError(absl::string_view msg) {
  return WithReason(absl::PermissionDeniedError(msg), Reason::kFenced);
}
absl::Status ReadOnlyError(absl::string_view msg) {
  return WithReason(absl::FailedPreconditionError(msg), Reason::kReadOnly);
}
absl::Status WouldBlock() {
  return WithReason(absl::ResourceExhaustedError("would block"), Reason::kWouldBlock);
}

uint16_t EncodeWireStatus(const absl::Status& s) {
  if (s.ok()) return 0;
  return static_cast<uint16_t>(static_cast<uint16_t>(s.code()) & 0xff) |
         static_cast<uint16_t>(static_cast<uint16_t>(ReasonOf(s)) << 8);
}

absl::Status DecodeWireStatus(uint16_t status, absl::string_view message) {
  const int code = status & 0xff;
  if (code == 0) return absl::OkStatus();
  // A code this build does not know is UNKNOWN, not a cast out of range.
  const absl::StatusCode c = code <= static_cast<int>(absl::StatusCode::kUnauthenticated)
                                 ? static_cast<absl::StatusCode>(code)
                                 : absl::StatusCode::kUnknown;
  const uint8_t r = static_cast<uint8_t>(status >> 8);
  return WithReason(absl::Status(c, message),
                    r <= kMaxReason ? static_cast<Reason>(r) : Reason::kNone);
}

}  // namespace ukai
