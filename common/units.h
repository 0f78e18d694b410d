// Parsing and printing of byte sizes ("20G", "512", "4M") and disk names.
#ifndef UKAI_COMMON_UNITS_H_
#define UKAI_COMMON_UNITS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ukai {
// Accepts a decimal integer with an optional binary suffix K, M, G, T, P
// (optionally followed by "i" or "iB"/"B"). INVALID_ARGUMENT on anything else,
// negative numbers and overflow.
absl::StatusOr<uint64_t> ParseSize(absl::string_view text);
// "4.0 GiB" style.
std::string FormatSize(uint64_t bytes);
// Disk names: [A-Za-z0-9._-]{1,64}, not "." or "..". INVALID_ARGUMENT names the rule.
absl::Status ValidateDiskName(absl::string_view name);
// Snapshot names follow the same alphabet.
absl::Status ValidateSnapshotName(absl::string_view name);
// Node and job ids, which name znodes: the same rule. `what`: "node id".
absl::Status ValidateId(absl::string_view what, absl::string_view id);

// "DISK" or "DISK@SNAPSHOT", each part checked.
struct DiskRef {
  std::string disk;
  std::string snapshot;  // empty: the disk itself
};
enum class SnapPart { kOptional, kRequired, kForbidden };
absl::StatusOr<DiskRef> ParseDiskRef(absl::string_view text, SnapPart snap = SnapPart::kOptional);
}  // namespace ukai

#endif  // UKAI_COMMON_UNITS_H_
