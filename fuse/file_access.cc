#include "fuse/file_access.h"

#include <memory>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "security/files.h"

namespace ukai::fuse {
namespace {

constexpr char kHeader[] = "ukai-fuse access v1";
// One line is at most ~60 bytes: the whole file stays under this.
constexpr size_t kMaxFileBytes = FileAccess::kMaxEntries * 64 + 64;

absl::Status BadLine(size_t line, const std::string& why) {
  return absl::DataLossError(absl::StrCat("line ", line, ": ", why));
}

// "INO UID GID MODE" (mode in octal).
absl::Status ParseLine(absl::string_view text, size_t line, std::map<uint64_t, Access>* out) {
  std::vector<absl::string_view> f = absl::StrSplit(text, ' ');
  if (f.size() != 4) return BadLine(line, "expected INO UID GID MODE");
  uint64_t ino = 0;
  uint32_t uid = 0, gid = 0, mode = 0;
  if (!absl::SimpleAtoi(f[0], &ino) || ino == 0 || !absl::SimpleAtoi(f[1], &uid) ||
      !absl::SimpleAtoi(f[2], &gid)) {
    return BadLine(line, "bad number");
  }
  if (f[3].empty() || f[3].size() > 5 || f[3].find_first_not_of("01234567") != f[3].npos) {
    return BadLine(line, "bad mode");
  }
  for (char c : f[3]) mode = mode * 8 + static_cast<uint32_t>(c - '0');
  if (mode > 07777) return BadLine(line, "bad mode");
  if (!out->emplace(ino, Access{uid, gid, mode}).second) return BadLine(line, "inode repeated");
  if (out->size() > FileAccess::kMaxEntries) return BadLine(line, "too many entries");
  return absl::OkStatus();
}

}  // namespace

std::string FileAccess::Encode(const std::map<uint64_t, Access>& table) {
  std::string out = absl::StrCat(kHeader, "\n");
  for (const auto& [ino, a] : table) {
    absl::StrAppendFormat(&out, "%u %u %u %o\n", ino, a.uid, a.gid, a.mode);
  }
  return out;
}

absl::StatusOr<std::map<uint64_t, Access>> FileAccess::Decode(const std::string& text) {
  if (text.size() > kMaxFileBytes) return absl::DataLossError("too large");
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (lines.empty() || lines[0] != kHeader) return BadLine(1, "not a ukai-fuse access table");
  if (!lines.back().empty()) return BadLine(lines.size(), "truncated (no final newline)");
  std::map<uint64_t, Access> table;
  for (size_t i = 1; i + 1 < lines.size(); ++i) RETURN_IF_ERROR(ParseLine(lines[i], i + 1, &table));
  return table;
}

absl::StatusOr<std::unique_ptr<FileAccess>> FileAccess::Open(const std::string& path,
                                                             Access defaults) {
  std::map<uint64_t, Access> table;
  if (!path.empty()) {
    absl::StatusOr<std::string> text = security::ReadSmallFile(path, kMaxFileBytes);
    if (text.ok()) {
      absl::StatusOr<std::map<uint64_t, Access>> t = Decode(*text);
      if (!t.ok()) return absl::DataLossError(absl::StrCat(path, ": ", t.status().message()));
      table = std::move(*t);
    } else if (!absl::IsNotFound(text.status())) {
      return text.status();
    }
  }
  return std::unique_ptr<FileAccess>(new FileAccess(path, defaults, std::move(table)));
}

Access FileAccess::Get(uint64_t ino, bool read_only) const {
  Access a = defaults_;
  {
    absl::MutexLock l(&mu_);
    auto it = table_.find(ino);
    if (it != table_.end()) a = it->second;
  }
  if (read_only) a.mode &= ~mode_t{0222};
  return a;
}

absl::Status FileAccess::Set(uint64_t ino, Access a) {
  if (ino == 0 || a.mode > 07777) return absl::InvalidArgumentError("bad inode or mode");
  absl::MutexLock l(&mu_);
  std::map<uint64_t, Access> next = table_;
  if (a == defaults_) {
    next.erase(ino);
  } else {
    next[ino] = a;
  }
  if (next.size() > kMaxEntries) {
    return absl::ResourceExhaustedError("too many disk files with their own owner or mode");
  }
  if (!path_.empty()) RETURN_IF_ERROR(security::WriteFileAtomically(path_, Encode(next), 0600));
  table_ = std::move(next);
  return absl::OkStatus();
}

}  // namespace ukai::fuse
