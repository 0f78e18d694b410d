// The cluster's certificate authority, offline: what `ukaictl ca` and
// `ukaictl cert` do, with OpenSSL's libcrypto. Keys are ECDSA P-256,
// signatures SHA-256.
//
// A CA directory holds
//   ca.key              the CA's private key (0600; keep it off the nodes)
//   ca.pem              the CA certificate every process trusts
//   issued/SERIAL.pem   every certificate issued, for `cert list` and `cert revoke`
//   revoked             the revoked serials, one per line
//   crl.pem             the signed revocation list made from them
//   zk-auth, zk-auth-ro ZooKeeper's read-write and read-only credentials (zk_auth.h)
// and a process's TLS directory (tls_dir.h) is what IssueCert writes:
// key.pem (0600), cert.pem, ca.pem and zk-auth (0600; the read-only one for
// a backup identity).
#ifndef UKAI_SECURITY_PKI_H_
#define UKAI_SECURITY_PKI_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/identity.h"

namespace ukai::security {

struct CertInfo {
  Identity who;
  std::string serial;  // upper-case hex, as `openssl x509 -serial` prints it
  absl::Time not_before, not_after;
};

// The identity (its ukai: URI name), serial and validity of a PEM
// certificate; INVALID_ARGUMENT when it is not one or names no identity.
absl::StatusOr<CertInfo> ReadCert(const std::string& pem);
// OK when `cert_pem` is signed by `ca_pem` and valid at `now`;
// FAILED_PRECONDITION saying why not.
absl::Status VerifyCert(const std::string& cert_pem, const std::string& ca_pem, absl::Time now);

// Makes a new CA in `ca_dir` (created 0700); ALREADY_EXISTS if one is there.
absl::Status InitCa(const std::string& ca_dir, const std::string& cluster_name, absl::Time now);
// Issues a certificate for `who`, valid from `now` for `validity`, into
// `out_dir` (created 0700): a new key each time, so issuing again for the
// same identity is how a certificate is renewed.
absl::StatusOr<CertInfo> IssueCert(const std::string& ca_dir, const Identity& who,
                                   absl::Duration validity, const std::string& out_dir,
                                   absl::Time now);

struct IssuedCert {
  CertInfo info;
  bool revoked = false;
};
// Every certificate the CA issued, oldest first.
absl::StatusOr<std::vector<IssuedCert>> ListIssued(const std::string& ca_dir);
// Adds `serials` (each one the CA issued; NOT_FOUND otherwise) to the revoked
// list and signs a new crl.pem. Returns the certificates revoked.
absl::StatusOr<std::vector<CertInfo>> Revoke(const std::string& ca_dir,
                                             const std::vector<std::string>& serials,
                                             absl::Time now);
// The serials a revocation list names, once its signature is checked
// against `ca_pem` (INVALID_ARGUMENT otherwise).
absl::StatusOr<std::set<std::string>> RevokedSerials(const std::string& crl_pem,
                                                     const std::string& ca_pem);

}  // namespace ukai::security

#endif  // UKAI_SECURITY_PKI_H_
