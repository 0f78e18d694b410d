// Authorizer: who may call what on a node's gRPC services, decided once per
// call before the handler runs. The caller is the identity its verified
// client certificate names (identity.h); the table (AllowedRoles, the
// source of the table in docs/SECURITY.md) gives the roles each method
// admits, and a method not in it is refused to everyone. A revoked
// certificate is refused whatever it asks. The admitted identity is put on
// the call's auth context, where handlers read it (CallerOf) for finer
// checks and the audit log.
#ifndef UKAI_SECURITY_AUTHORIZER_H_
#define UKAI_SECURITY_AUTHORIZER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "security/identity.h"
#include "security/pki.h"
#include "security/revocations.h"

namespace ukai::security {

// The roles that may call the gRPC method `path` ("/ukai.pb.Admin/CreateDisk");
// none for a method the table does not know.
Roles AllowedRoles(absl::string_view path);
// "/ukai.pb.Admin/CreateDisk" -> "Admin.CreateDisk".
std::string MethodName(absl::string_view path);
// "admin", "node, admin", for messages and docs.
std::string RolesText(Roles roles);

class Authorizer final : public grpc::AuthMetadataProcessor {
 public:
  explicit Authorizer(std::shared_ptr<Revocations> revocations)
      : revocations_(std::move(revocations)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed, OutputMetadata* response) override;
  // The decision, for a caller presenting the PEM certificate `cert_pem`:
  // the caller's identity, UNAUTHENTICATED (no UKAI identity, or revoked) or
  // PERMISSION_DENIED (its role may not call `path`).
  absl::StatusOr<Identity> Check(absl::string_view path, const std::string& cert_pem);

 private:
  absl::StatusOr<CertInfo> Parse(const std::string& cert_pem);
  const std::shared_ptr<Revocations> revocations_;
  absl::Mutex mu_;
  // Certificates seen, parsed once: a connection presents the same one on
  // every call. Cleared when full.
  std::unordered_map<std::string, CertInfo> parsed_ ABSL_GUARDED_BY(mu_);
};

// The identity the Authorizer admitted for this call; nullopt on a
// plaintext server (--insecure-plaintext), which has no callers' identities.
std::optional<Identity> CallerIdentity(const grpc::ServerContextBase& ctx);
// "admin ops", or "an unauthenticated caller (plaintext)", for the audit log.
std::string CallerOf(const grpc::ServerContextBase& ctx);

}  // namespace ukai::security

#endif  // UKAI_SECURITY_AUTHORIZER_H_
