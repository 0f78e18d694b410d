// Files that hold keys and certificates: read with a size limit, written
// private and whole (a reader never sees half a key; a crash leaves the old
// file or the new one).
#ifndef UKAI_SECURITY_FILES_H_
#define UKAI_SECURITY_FILES_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"

namespace ukai::security {

// The whole file, refused (FAILED_PRECONDITION naming it) when over
// `max_bytes`; NOT_FOUND when missing.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes = 1 << 20);
// Writes `data` to a new file beside `path` (O_EXCL|O_NOFOLLOW, `mode`),
// syncs it and renames it over `path`.
absl::Status WriteFileAtomically(const std::string& path, const std::string& data, mode_t mode);
// Creates `dir` (and missing parents) with mode 0700; an existing one keeps
// its mode.
absl::Status MakePrivateDir(const std::string& dir);
// FAILED_PRECONDITION when group or others may read `path`: a private key
// readable by others is no longer private.
absl::Status CheckPrivate(const std::string& path);

}  // namespace ukai::security

#endif  // UKAI_SECURITY_FILES_H_
