// UKAI's ZooKeeper identities (digest scheme): "ukai" may do anything under
// the cluster's root, "ukai-ro" may only read it; every znode UKAI creates
// carries exactly those two entries, so an anonymous client can neither read
// nor change /ukai. `ukaictl ca init` makes both passwords; `ukaictl cert
// issue` puts the read-write one in a node's, frontend's or admin's TLS
// directory and the read-only one in a backup identity's, as `zk-auth`
// (0600). The file:
//
//   credential ukai:<password>
//   acl ukai:<base64 sha1 of ukai:password> cdrwa
//   acl ukai-ro:<base64 sha1 of ukai-ro:password> r
#ifndef UKAI_SECURITY_ZK_AUTH_H_
#define UKAI_SECURITY_ZK_AUTH_H_

#include <string>

#include "absl/status/statusor.h"
#include "meta/meta_store.h"
#include "security/identity.h"

namespace ukai::security {

constexpr char kZkAuthFile[] = "zk-auth";

// Writes ca_dir/zk-auth and ca_dir/zk-auth-ro with new random passwords.
absl::Status MakeZkSecrets(const std::string& ca_dir);
// The CA directory's file for a certificate of `role`.
std::string ZkSecretFor(const std::string& ca_dir, Role role);
// Reads a zk-auth file (refused unless private); INVALID_ARGUMENT naming the
// bad line.
absl::StatusOr<meta::ZkAuth> ReadZkAuth(const std::string& path);
// "user:base64(sha1(user:password))", ZooKeeper's digest id of a credential.
std::string DigestId(const std::string& credential);

}  // namespace ukai::security

#endif  // UKAI_SECURITY_ZK_AUTH_H_
