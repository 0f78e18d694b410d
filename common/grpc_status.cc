#include "common/grpc_status.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/reason.h"

namespace ukai {

namespace {
// error_details of a status with a Reason: this prefix and the reason's number.
constexpr absl::string_view kReasonDetail = "ukai-reason:";
}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  const Reason r = ReasonOf(s);
  std::string details;
  if (r != Reason::kNone) details = absl::StrCat(kReasonDetail, static_cast<int>(r));
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()), details);
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  const std::string details = s.error_details();  // a copy, not a reference
  absl::string_view d = details;
  int r = 0;
  if (absl::ConsumePrefix(&d, kReasonDetail) && absl::SimpleAtoi(d, &r) && r > 0 &&
      r <= kMaxReason) {
    out = WithReason(std::move(out), static_cast<Reason>(r));
  }
  return out;
}

}  // namespace ukai
