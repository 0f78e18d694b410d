#include "security/transport.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "common/log.h"
#include "security/authorizer.h"
#include "security/wire_tls.h"
#include "security/zk_auth.h"

namespace ukai::security {
namespace {

using grpc::experimental::FileWatcherCertificateProvider;

std::shared_ptr<FileWatcherCertificateProvider> Provider(const TlsDir& t) {
  return std::make_shared<FileWatcherCertificateProvider>(t.key_path(), t.cert_path(), t.ca_path(),
                                                          kReloadEverySeconds);
}

}  // namespace

std::shared_ptr<const TransportSecurity> TransportSecurity::Plaintext() {
  return std::shared_ptr<const TransportSecurity>(new TransportSecurity());
}

absl::StatusOr<std::shared_ptr<const TransportSecurity>> TransportSecurity::Mutual(
    const std::string& dir, Clock* clock) {
  auto tls = TlsDir::Open(dir, clock->Now());
  if (!tls.ok()) return tls.status();
  auto zk = ReadZkAuth(dir + "/" + kZkAuthFile);
  if (!zk.ok()) {
    return absl::FailedPreconditionError(
        "TLS directory " + dir + ": ZooKeeper credential: " + std::string(zk.status().message()));
  }
  auto t = std::shared_ptr<TransportSecurity>(new TransportSecurity());
  t->zk_auth_ = std::move(*zk);
  t->revocations_ = std::make_shared<Revocations>(tls->crl_path(), tls->ca, clock);
  auto wire = WireTls::Open(*tls, t->revocations_, clock);
  if (!wire.ok()) return wire.status();
  t->wire_ = std::move(*wire);
  t->tls_ = std::move(*tls);
  return std::shared_ptr<const TransportSecurity>(std::move(t));
}

absl::StatusOr<std::shared_ptr<const TransportSecurity>> TransportSecurity::FromFlags(
    const std::string& program, const std::string& tls_dir, bool plaintext, Clock* clock) {
  if (plaintext && !tls_dir.empty()) {
    return absl::InvalidArgumentError("--tls-dir and --insecure-plaintext exclude each other");
  }
  if (plaintext) {
    LOG_WARN(
        "%s: --insecure-plaintext: connections are neither encrypted nor authenticated and "
        "anyone who reaches this process may do anything, and znodes it creates are open to all; "
        "for benchmarks on a closed network only",
        program);
    return Plaintext();
  }
  if (tls_dir.empty()) {
    return absl::InvalidArgumentError(
        "no TLS credentials: pass --tls-dir DIR (made by `ukaictl cert issue`), or "
        "--insecure-plaintext for a benchmark on a closed network");
  }
  return Mutual(tls_dir, clock);
}

ChannelFactory TransportSecurity::Channels() const {
  if (!tls_) return InsecureChannels();
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_certificate_provider(Provider(*tls_));
  o.watch_root_certs();
  o.watch_identity_key_cert_pairs();
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::experimental::TlsCredentials(o);
  return
      [creds](const std::string& address) { return MakeChannel(address, creds, kNodeServerName); };
}

std::shared_ptr<grpc::ServerCredentials> TransportSecurity::ServerCredentials() const {
  if (!tls_) return grpc::InsecureServerCredentials();
  grpc::experimental::TlsServerCredentialsOptions o(Provider(*tls_));
  o.watch_root_certs();
  o.watch_identity_key_cert_pairs();
  o.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::experimental::TlsServerCredentials(o);
  creds->SetAuthMetadataProcessor(std::make_shared<Authorizer>(revocations_));
  return creds;
}

}  // namespace ukai::security
