// A process's TLS credentials: a directory with ca.pem (the cluster CA),
// cert.pem and key.pem (0600), as `ukaictl cert issue` writes it, and
// crl.pem (the CA's revocation list) when the operator put one there.
//
// Daemons take it as --tls-dir; ukaictl as --tls-dir or $UKAI_TLS_DIR.
// Without one they refuse to start, unless told --insecure-plaintext
// (benchmarks only; logged as a warning).
#ifndef UKAI_SECURITY_TLS_DIR_H_
#define UKAI_SECURITY_TLS_DIR_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/pki.h"

namespace ukai::security {

struct TlsDir {
  std::string dir;
  CertInfo self;   // who cert.pem says this process is
  std::string ca;  // ca.pem's text

  std::string cert_path() const { return dir + "/cert.pem"; }
  std::string key_path() const { return dir + "/key.pem"; }
  std::string ca_path() const { return dir + "/ca.pem"; }
  std::string crl_path() const { return dir + "/crl.pem"; }

  // Checks the directory as a process about to use it should: the three
  // files there, the key private, the certificate signed by the CA, valid
  // at `now` and naming a UKAI identity. FAILED_PRECONDITION saying which
  // file is wrong and why.
  static absl::StatusOr<TlsDir> Open(const std::string& dir, absl::Time now);
};

}  // namespace ukai::security

#endif  // UKAI_SECURITY_TLS_DIR_H_
