// TransportSecurity: how a process's gRPC connections are protected. With a
// TLS directory (tls_dir.h), every channel and server uses mutual TLS 1.3:
// servers demand a client certificate from the cluster CA and run the
// Authorizer on every call; channels present the process's certificate and
// accept only a server whose certificate is a node's (kNodeServerName).
// Certificates are re-read when their files change (checked every
// kReloadEvery), so `ukaictl cert issue` over a TLS directory renews a
// running process's certificate without a restart.
//
// Block I/O over TCP uses the same credentials (wire_tls.h). The same
// directory's zk-auth is the process's ZooKeeper identity.
//
// Plaintext exists for benchmarks only (--insecure-plaintext): no
// encryption, no identities, every caller admitted, znodes open to all.
#ifndef UKAI_SECURITY_TRANSPORT_H_
#define UKAI_SECURITY_TRANSPORT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/wire_stream.h"
#include "meta/meta_store.h"
#include "security/revocations.h"
#include "security/tls_dir.h"

namespace ukai::security {

constexpr int kReloadEverySeconds = 10;

class TransportSecurity {
 public:
  static std::shared_ptr<const TransportSecurity> Plaintext();
  // Mutual TLS with the credentials in `dir` (TlsDir::Open's checks).
  static absl::StatusOr<std::shared_ptr<const TransportSecurity>> Mutual(const std::string& dir,
                                                                         Clock* clock);
  // What a program's flags ask for: exactly one of --tls-dir DIR and
  // --insecure-plaintext (which logs a warning naming `program`).
  static absl::StatusOr<std::shared_ptr<const TransportSecurity>> FromFlags(
      const std::string& program, const std::string& tls_dir, bool plaintext, Clock* clock);

  bool plaintext() const { return !tls_.has_value(); }
  // The process's own credentials (nullopt when plaintext).
  const std::optional<TlsDir>& tls() const { return tls_; }
  // Channels to nodes.
  ChannelFactory Channels() const;
  // For a server's listening port: with mutual TLS, its Authorizer set.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  const std::shared_ptr<Revocations>& revocations() const { return revocations_; }
  // For block I/O over TCP (wire_tls.h); null when plaintext.
  const std::shared_ptr<wire::WireSecurity>& wire() const { return wire_; }
  // The ZooKeeper identity from the TLS directory's zk-auth (zk_auth.h);
  // none when plaintext.
  const meta::ZkAuth& zk_auth() const { return zk_auth_; }

 private:
  TransportSecurity() = default;
  std::optional<TlsDir> tls_;
  std::shared_ptr<Revocations> revocations_;
  std::shared_ptr<wire::WireSecurity> wire_;
  meta::ZkAuth zk_auth_;
};

}  // namespace ukai::security

#endif  // UKAI_SECURITY_TRANSPORT_H_
