// Status helpers missing from Debian's Abseil 20220623.
#ifndef UKAI_COMMON_STATUS_H_
#define UKAI_COMMON_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "common/reason.h"

#define UKAI_CONCAT_INNER_(a, b) a##b
#define UKAI_CONCAT_(a, b) UKAI_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status ukai_status_ = (expr);        \
    if (!ukai_status_.ok()) return ukai_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F())` assigns the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(UKAI_CONCAT_(ukai_sor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(*tmp)

namespace ukai {
// Prefixes `context: ` to a non-OK status' message, keeping its code and
// payloads (its Reason, common/reason.h).
inline absl::Status Annotate(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  absl::Status out(s.code(), std::string(context) + ": " + std::string(s.message()));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
  return out;
}

}  // namespace ukai

#endif  // UKAI_COMMON_STATUS_H_
