// WireTls: mutual TLS 1.3 for UKAI's block I/O transport (common/wire_stream.h),
// with OpenSSL. The same TLS directory and rules as gRPC (transport.h):
// both ends present a certificate of the cluster CA; a client accepts only a
// node's (kNodeServerName); a revoked certificate is refused at the
// handshake, and a connection whose peer is revoked later is closed at its
// next read (looked at once a second). Certificates are re-read when their
// files change, checked every kReloadEverySeconds, for new connections.
//
// A stream (tls_stream.h) keeps OpenSSL off the socket: the connection's
// reader and its writers share one SSL object, one lock around each OpenSSL
// call, and wait in recv() and send() outside it. Small pieces of a frame
// (header, meta) are sent in one record with the first bytes of its data.
//
// Thread-safe.
#ifndef UKAI_SECURITY_WIRE_TLS_H_
#define UKAI_SECURITY_WIRE_TLS_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/wire_stream.h"
#include "security/revocations.h"
#include "security/tls_dir.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace ukai::security {

class WireTls final : public wire::WireSecurity {
 public:
  // Builds the contexts from `tls` (TlsDir::Open checked it); FAILED_PRECONDITION
  // when OpenSSL refuses its files.
  static absl::StatusOr<std::shared_ptr<WireTls>> Open(TlsDir tls,
                                                       std::shared_ptr<Revocations> revocations,
                                                       Clock* clock);
  ~WireTls() override;

  absl::StatusOr<std::unique_ptr<wire::WireStream>> Connect(int fd, const std::string& address,
                                                            absl::Duration timeout,
                                                            absl::Duration send_timeout) override;
  absl::StatusOr<std::unique_ptr<wire::WireStream>> Accept(int fd, absl::Duration timeout,
                                                           wire::WirePeer* peer) override;

 private:
  struct Contexts;
  WireTls(TlsDir tls, std::shared_ptr<Revocations> revocations, Clock* clock)
      : tls_(std::move(tls)), revocations_(std::move(revocations)), clock_(clock) {}
  // The current contexts, rebuilt first when the files changed.
  std::shared_ptr<const Contexts> Current();
  absl::Status Reload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const TlsDir tls_;
  const std::shared_ptr<Revocations> revocations_;
  Clock* const clock_;
  absl::Mutex mu_;
  std::shared_ptr<const Contexts> contexts_ ABSL_GUARDED_BY(mu_);
  int64_t files_mtime_ns_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Time next_look_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace ukai::security

#endif  // UKAI_SECURITY_WIRE_TLS_H_
