#include "common/units.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/status.h"

namespace ukai {

absl::StatusOr<uint64_t> ParseSize(absl::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < t.size() && isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
  if (digits == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid size '%s': expected a non-negative number with an optional "
                        "K/M/G/T/P suffix",
                        text));
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(t.substr(0, digits), &n)) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid size '%s': too large", text));
  }
  std::string suffix = absl::AsciiStrToUpper(t.substr(digits));
  if (suffix.size() > 1 &&
      (suffix.substr(1) == "IB" || suffix.substr(1) == "B" || suffix.substr(1) == "I")) {
    suffix = suffix.substr(0, 1);
  }
  int shift = 0;
  if (suffix.empty() || suffix == "B")
    shift = 0;
  else if (suffix == "K")
    shift = 10;
  else if (suffix == "M")
    shift = 20;
  else if (suffix == "G")
    shift = 30;
  else if (suffix == "T")
    shift = 40;
  else if (suffix == "P")
    shift = 50;
  else
    return absl::InvalidArgumentError(absl::StrFormat("invalid size '%s': unknown suffix", text));
  if (shift > 0 && n > (UINT64_MAX >> shift)) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid size '%s': too large", text));
  }
  return n << shift;
}

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return absl::StrFormat("%d B", bytes);
  return absl::StrFormat("%.1f %s", v, kUnits[u]);
}

absl::Status ValidateDiskName(absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && name != "." && name != "..";
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) ok = false;
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid disk name '%s': use 1-64 characters from A-Z a-z 0-9 . _ -", name));
  }
  return absl::OkStatus();
}

absl::Status ValidateId(absl::string_view what, absl::string_view id) {
  if (ValidateDiskName(id).ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("invalid %s '%s': use 1-64 characters from A-Z a-z 0-9 . _ -", what, id));
}

absl::Status ValidateSnapshotName(absl::string_view name) {
  if (!ValidateDiskName(name).ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid snapshot name '%s': use 1-64 characters from A-Z a-z 0-9 . _ -", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<DiskRef> ParseDiskRef(absl::string_view text, SnapPart snap) {
  DiskRef r;
  const size_t at = text.find('@');
  r.disk = std::string(text.substr(0, at));
  if (at != absl::string_view::npos) r.snapshot = std::string(text.substr(at + 1));
  if (at == absl::string_view::npos && snap == SnapPart::kRequired) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' names no snapshot: write DISK@SNAPSHOT", text));
  }
  if (at != absl::string_view::npos && snap == SnapPart::kForbidden) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' names a snapshot; a disk is wanted here", text));
  }
  RETURN_IF_ERROR(ValidateDiskName(r.disk));
  if (at != absl::string_view::npos) RETURN_IF_ERROR(ValidateSnapshotName(r.snapshot));
  return r;
}

}  // namespace ukai
