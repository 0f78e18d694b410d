#include "security/revocations.h"

#include <sys/stat.h>

#include "common/log.h"
#include "security/files.h"
#include "security/pki.h"

namespace ukai::security {

bool Revocations::Revoked(const std::string& serial) {
  absl::MutexLock l(&mu_);
  MaybeReload();
  return revoked_.count(serial) > 0;
}

void Revocations::Set(std::set<std::string> serials) {
  absl::MutexLock l(&mu_);
  revoked_ = std::move(serials);
}

void Revocations::MaybeReload() {
  if (crl_path_.empty()) return;
  const absl::Time now = clock_->Now();
  if (now < next_look_) return;
  next_look_ = now + absl::Seconds(1);
  struct stat st;
  int64_t mtime = -2;  // missing
  if (stat(crl_path_.c_str(), &st) == 0) {
    mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  if (mtime == seen_mtime_ns_) return;
  seen_mtime_ns_ = mtime;
  if (mtime == -2) {
    revoked_.clear();
    return;
  }
  auto pem = ReadSmallFile(crl_path_, 16 << 20);
  auto serials = pem.ok() ? RevokedSerials(*pem, ca_pem_) : pem.status();
  if (!serials.ok()) {
    LOG_WARN("revocation list %s ignored, keeping the last good one: %s", crl_path_,
             serials.status().ToString());
    return;
  }
  if (serials->size() != revoked_.size()) {
    LOG_INFO("revocation list %s: %d certificate(s) revoked", crl_path_, serials->size());
  }
  revoked_ = std::move(*serials);
}

}  // namespace ukai::security
