// Revocations: the serials of revoked certificates, as the CA's signed
// revocation list names them. Every server checks each caller's serial
// against it on every request (authorizer.h), so a revoked certificate is
// refused within a second of the list reaching the host, on connections
// already open too.
//
// The list is read from a file (the TLS directory's crl.pem) and read again
// when the file changes, looked at most once a second. A list that is
// missing means nothing is revoked; one that does not verify against the CA
// is ignored with a warning, keeping the last good one.
//
// Thread-safe.
#ifndef UKAI_SECURITY_REVOCATIONS_H_
#define UKAI_SECURITY_REVOCATIONS_H_

#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace ukai::security {

class Revocations {
 public:
  // `crl_path` empty: only Set changes the list.
  Revocations(std::string crl_path, std::string ca_pem, Clock* clock)
      : crl_path_(std::move(crl_path)), ca_pem_(std::move(ca_pem)), clock_(clock) {}
  bool Revoked(const std::string& serial);
  void Set(std::set<std::string> serials);

 private:
  void MaybeReload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::string crl_path_, ca_pem_;
  Clock* const clock_;
  absl::Mutex mu_;
  std::set<std::string> revoked_ ABSL_GUARDED_BY(mu_);
  absl::Time next_look_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t seen_mtime_ns_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace ukai::security

#endif  // UKAI_SECURITY_REVOCATIONS_H_
