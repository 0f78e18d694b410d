#include "security/wire_tls.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "security/identity.h"
#include "security/pki.h"
#include "security/tls_stream.h"
#include "security/transport.h"

namespace ukai::security {
namespace {

// The peer's certificate, read as a UKAI identity.
absl::StatusOr<CertInfo> PeerCert(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return absl::PermissionDeniedError("the peer sent no certificate");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return ReadCert(pem);
}

}  // namespace

// One context per side, made from the same files.
struct WireTls::Contexts {
  SSL_CTX* client = nullptr;
  SSL_CTX* server = nullptr;
  ~Contexts() {
    SSL_CTX_free(client);
    SSL_CTX_free(server);
  }
};

namespace {

// A context with the process's certificate, trusting only the cluster CA,
// TLS 1.3 only, the peer's certificate required.
absl::StatusOr<SSL_CTX*> NewContext(const TlsDir& tls, bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) return absl::InternalError(SslErrors("SSL_CTX_new"));
  bool ok = SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
            SSL_CTX_use_certificate_chain_file(ctx, tls.cert_path().c_str()) == 1 &&
            SSL_CTX_use_PrivateKey_file(ctx, tls.key_path().c_str(), SSL_FILETYPE_PEM) == 1 &&
            SSL_CTX_check_private_key(ctx) == 1 &&
            SSL_CTX_load_verify_locations(ctx, tls.ca_path().c_str(), nullptr) == 1;
  if (!ok) {
    SSL_CTX_free(ctx);
    return absl::FailedPreconditionError(SslErrors("TLS directory " + tls.dir));
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  // AES-128-GCM first: as strong as a cluster needs, a third less work per
  // byte than AES-256 (every byte is sealed and opened once per replica).
  SSL_CTX_set_ciphersuites(ctx,
                           "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                           "TLS_CHACHA20_POLY1305_SHA256");
  // Take whatever the stream's pipe holds, not a record header then its
  // body: half the calls into it.
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Connections live long and are never resumed: no session tickets to send.
  if (server) SSL_CTX_set_num_tickets(ctx, 0);
  return ctx;
}

int64_t MtimeNs(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

absl::StatusOr<std::shared_ptr<WireTls>> WireTls::Open(TlsDir tls,
                                                       std::shared_ptr<Revocations> revocations,
                                                       Clock* clock) {
  std::shared_ptr<WireTls> w(new WireTls(std::move(tls), std::move(revocations), clock));
  absl::MutexLock l(&w->mu_);
  RETURN_IF_ERROR(w->Reload());
  return w;
}

WireTls::~WireTls() = default;

absl::Status WireTls::Reload() {
  int64_t mtime =
      std::max({MtimeNs(tls_.cert_path()), MtimeNs(tls_.key_path()), MtimeNs(tls_.ca_path())});
  if (contexts_ != nullptr && mtime == files_mtime_ns_) return absl::OkStatus();
  auto c = std::make_shared<Contexts>();
  ASSIGN_OR_RETURN(c->client, NewContext(tls_, /*server=*/false));
  ASSIGN_OR_RETURN(c->server, NewContext(tls_, /*server=*/true));
  if (contexts_ != nullptr) LOG_INFO("block I/O: TLS certificate in %s re-read", tls_.dir);
  contexts_ = std::move(c);
  files_mtime_ns_ = mtime;
  return absl::OkStatus();
}

std::shared_ptr<const WireTls::Contexts> WireTls::Current() {
  absl::MutexLock l(&mu_);
  absl::Time now = clock_->Now();
  if (now >= next_look_) {
    next_look_ = now + absl::Seconds(kReloadEverySeconds);
    // Files caught mid-renewal fail to load: keep the last good ones.
    if (absl::Status s = Reload(); !s.ok()) LOG_WARN("block I/O: %s", s.message());
  }
  return contexts_;
}

absl::StatusOr<std::unique_ptr<wire::WireStream>> WireTls::Connect(int fd,
                                                                   const std::string& address,
                                                                   absl::Duration timeout,
                                                                   absl::Duration send_timeout) {
  std::shared_ptr<const Contexts> c = Current();
  SSL* ssl = SSL_new(c->client);
  BIO* network = ssl == nullptr ? nullptr : AttachPipe(ssl);
  if (network == nullptr) {
    SSL_free(ssl);
    return absl::InternalError(SslErrors("SSL_new"));
  }
  // Only a node's certificate names kNodeServerName.
  SSL_set_connect_state(ssl);
  SSL_set1_host(ssl, kNodeServerName);
  SSL_set_tlsext_host_name(ssl, kNodeServerName);
  absl::Status s = Handshake(ssl, network, fd, absl::Now() + timeout);
  absl::StatusOr<CertInfo> peer = s.ok() ? PeerCert(ssl) : s;
  if (peer.ok() && revocations_->Revoked(peer->serial)) {
    peer = absl::PermissionDeniedError("node " + peer->who.id + "'s certificate is revoked");
  }
  if (!peer.ok()) {
    SSL_free(ssl);
    BIO_free(network);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return absl::Status(peer.status().code(), absl::StrCat(address, ": ", peer.status().message()));
  }
  return std::make_unique<TlsStream>(fd, ssl, network, send_timeout, peer->serial, nullptr);
}

absl::StatusOr<std::unique_ptr<wire::WireStream>> WireTls::Accept(int fd, absl::Duration timeout,
                                                                  wire::WirePeer* peer) {
  std::shared_ptr<const Contexts> c = Current();
  SSL* ssl = SSL_new(c->server);
  BIO* network = ssl == nullptr ? nullptr : AttachPipe(ssl);
  if (network == nullptr) {
    SSL_free(ssl);
    return absl::InternalError(SslErrors("SSL_new"));
  }
  SSL_set_accept_state(ssl);
  absl::Status s = Handshake(ssl, network, fd, absl::Now() + timeout);
  absl::StatusOr<CertInfo> cert = s.ok() ? PeerCert(ssl) : s;
  if (cert.ok() && revocations_->Revoked(cert->serial)) {
    cert = absl::PermissionDeniedError(cert->who.ToString() + "'s certificate is revoked");
  }
  if (!cert.ok()) {
    SSL_free(ssl);
    BIO_free(network);
    return cert.status();
  }
  *peer = wire::WirePeer::Certified(std::string(RoleName(cert->who.role)), cert->who.id);
  // Replies to a client that stopped reading give up after this long.
  constexpr absl::Duration kServerSendTimeout = absl::Seconds(30);
  return std::make_unique<TlsStream>(fd, ssl, network, kServerSendTimeout, cert->serial,
                                     revocations_);
}

}  // namespace ukai::security
