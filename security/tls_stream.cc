#include "security/tls_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"

namespace ukai::security {
namespace {

// Each direction of a connection's BIO pair holds this much ciphertext: a
// 1 MiB frame leaves in 8 sends.
constexpr size_t kPipeBytes = 128 << 10;
// Records of at most this size are filled from a frame's small pieces.
constexpr size_t kRecordBytes = 16 << 10;

// Waits until `fd` is ready for `events` or `deadline` passes; false then.
bool WaitFor(int fd, short events, absl::Time deadline) {
  struct pollfd p = {fd, events, 0};
  while (true) {
    int ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      ms = static_cast<int>(
          std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()) + 1));
    }
    int rc = poll(&p, 1, ms);
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return true;  // the next call on fd reports it
  }
}

// Sends some of `n` bytes: how many. A non-blocking socket waits for room
// until `deadline`; on a blocking one the socket's own timeout has fired
// when it says EAGAIN (pass a deadline already past).
absl::StatusOr<size_t> SendSome(int fd, const char* p, size_t n, absl::Time deadline) {
  while (true) {
    ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::UnavailableError(absl::StrCat("TLS send: ", strerror(errno)));
    }
    if (!WaitFor(fd, POLLOUT, deadline)) return absl::UnavailableError("TLS send: timed out");
  }
}

// Receives up to `n` bytes: how many, 0 at the end of the stream. Waits as
// SendSome does (a blocking socket times out after its SO_RCVTIMEO).
absl::StatusOr<size_t> RecvSome(int fd, char* p, size_t n, absl::Time deadline) {
  while (true) {
    ssize_t r = recv(fd, p, n, 0);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::UnavailableError(absl::StrCat("TLS receive: ", strerror(errno)));
    }
    if (!WaitFor(fd, POLLIN, deadline))
      return absl::DeadlineExceededError("TLS receive: timed out");
  }
}

// The handshake's sends and receives: one thread, no lock.
absl::Status SendPipe(BIO* network, int fd, absl::Time deadline) {
  char* p = nullptr;
  for (int avail; (avail = BIO_nread0(network, &p)) > 0;) {
    ASSIGN_OR_RETURN(size_t sent, SendSome(fd, p, static_cast<size_t>(avail), deadline));
    BIO_nread(network, &p, static_cast<int>(sent));
  }
  return absl::OkStatus();
}

absl::Status ReceivePipe(BIO* network, int fd, absl::Time deadline) {
  char* p = nullptr;
  int room = BIO_nwrite0(network, &p);
  if (room <= 0) return absl::InternalError("TLS handshake: no room for the peer's records");
  absl::StatusOr<size_t> got = RecvSome(fd, p, static_cast<size_t>(room), deadline);
  if (absl::IsDeadlineExceeded(got.status())) {
    return absl::DeadlineExceededError("TLS handshake timed out");
  }
  if (!got.ok()) return got.status();
  if (*got == 0) return absl::UnavailableError("TLS handshake: the peer closed the connection");
  BIO_nwrite(network, &p, static_cast<int>(*got));
  return absl::OkStatus();
}

absl::Status HandshakeError(SSL* ssl) {
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    return absl::PermissionDeniedError(absl::StrCat("TLS handshake: certificate refused: ",
                                                    X509_verify_cert_error_string(verify)));
  }
  return absl::UnavailableError(SslErrors("TLS handshake failed"));
}

}  // namespace

std::string SslErrors(const std::string& what) {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? what : absl::StrCat(what, ": ", out);
}

BIO* AttachPipe(SSL* ssl) {
  BIO* inner = nullptr;
  BIO* network = nullptr;
  if (BIO_new_bio_pair(&inner, kPipeBytes, &network, kPipeBytes) != 1) return nullptr;
  SSL_set_bio(ssl, inner, inner);  // one reference, taken by ssl
  return network;
}

absl::Status Handshake(SSL* ssl, BIO* network, int fd, absl::Time deadline) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  while (true) {
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, rc);
    absl::Status failed = rc == 1 || err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE
                              ? absl::OkStatus()
                              : HandshakeError(ssl);      // read before the sends below
    absl::Status sent = SendPipe(network, fd, deadline);  // messages, or the alert
    RETURN_IF_ERROR(failed);
    RETURN_IF_ERROR(sent);
    if (rc == 1) return absl::OkStatus();
    if (err == SSL_ERROR_WANT_READ) RETURN_IF_ERROR(ReceivePipe(network, fd, deadline));
  }
}

TlsStream::TlsStream(int fd, SSL* ssl, BIO* network, absl::Duration send_timeout,
                     std::string serial, std::shared_ptr<Revocations> revocations)
    : WireStream(fd),
      ssl_(ssl),
      network_(network),
      serial_(std::move(serial)),
      revocations_(std::move(revocations)) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  struct timeval tv = absl::ToTimeval(send_timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

TlsStream::~TlsStream() {
  SSL_free(ssl_);
  BIO_free(network_);
}

absl::StatusOr<size_t> TlsStream::Read(char* buf, size_t n) {
  while (true) {
    size_t got = 0;
    int rc, err, room = 0;
    char* space = nullptr;
    bool spoke = false;  // whether reading made OpenSSL write (a key update's answer)
    {
      absl::MutexLock l(&mu_);
      size_t before = BIO_ctrl_pending(network_);
      ERR_clear_error();  // SSL_get_error reads the queue
      rc = SSL_read_ex(ssl_, buf, n, &got);
      err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
      spoke = BIO_ctrl_pending(network_) > before;
      if (err == SSL_ERROR_WANT_READ) room = BIO_nwrite0(network_, &space);
    }
    if (spoke || err == SSL_ERROR_WANT_WRITE) {
      absl::MutexLock l(&send_mu_);
      RETURN_IF_ERROR(Flush());
    }
    if (rc == 1) {
      RETURN_IF_ERROR(CheckNotRevoked());  // what a revoked peer sent is never used
      return got;
    }
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    if (err == SSL_ERROR_WANT_WRITE) continue;
    if (err != SSL_ERROR_WANT_READ) return absl::UnavailableError(SslErrors("TLS receive"));
    if (room <= 0) return absl::InternalError("TLS receive: no room for the next record");
    // Only this thread fills the pair towards OpenSSL: `space` stays free.
    ASSIGN_OR_RETURN(size_t r,
                     RecvSome(fd(), space, static_cast<size_t>(room), absl::InfiniteFuture()));
    if (r == 0) return 0;
    absl::MutexLock l(&mu_);
    BIO_nwrite(network_, &space, static_cast<int>(r));
  }
}

absl::Status TlsStream::CheckNotRevoked() {
  if (revocations_ == nullptr) return absl::OkStatus();
  absl::Time now = absl::Now();
  if (now < next_check_) return absl::OkStatus();
  next_check_ = now + absl::Seconds(1);
  if (revocations_->Revoked(serial_)) {
    return absl::PermissionDeniedError("the peer's certificate " + serial_ + " was revoked");
  }
  return absl::OkStatus();
}

absl::Status TlsStream::WriteAll(struct iovec* iov, int iovcnt) {
  absl::MutexLock l(&send_mu_);
  pending_.clear();
  for (int i = 0; i < iovcnt; ++i) {
    const char* p = static_cast<const char*>(iov[i].iov_base);
    size_t n = iov[i].iov_len;
    size_t fill = std::min(n, kRecordBytes - std::min(kRecordBytes, pending_.size()));
    if (n >= kRecordBytes && pending_.empty()) fill = 0;  // large and alone: straight in
    pending_.append(p, fill);
    p += fill;
    n -= fill;
    if (n == 0) continue;
    RETURN_IF_ERROR(Seal(pending_.data(), pending_.size()));
    pending_.clear();
    RETURN_IF_ERROR(Seal(p, n));
  }
  if (!pending_.empty()) RETURN_IF_ERROR(Seal(pending_.data(), pending_.size()));
  return Flush();
}

absl::Status TlsStream::Seal(const char* p, size_t n) {
  while (n > 0) {
    size_t done = 0;
    int rc, err;
    {
      absl::MutexLock l(&mu_);
      ERR_clear_error();
      rc = SSL_write_ex(ssl_, p, n, &done);
      err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, rc);
    }
    if (rc == 1) {
      p += done;
      n -= done;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      RETURN_IF_ERROR(Flush());  // then the same call again, as OpenSSL requires
    } else {
      return absl::UnavailableError(SslErrors("TLS send"));
    }
  }
  return absl::OkStatus();
}

absl::Status TlsStream::Flush() {
  while (true) {
    char* p = nullptr;
    int avail;
    {
      absl::MutexLock l(&mu_);
      avail = BIO_nread0(network_, &p);
    }
    if (avail <= 0) return absl::OkStatus();
    // OpenSSL only appends behind `p` meanwhile; only this thread consumes.
    absl::StatusOr<size_t> sent =
        SendSome(fd(), p, static_cast<size_t>(avail), absl::InfinitePast());
    if (!sent.ok()) return sent.status();
    absl::MutexLock l(&mu_);
    BIO_nread(network_, &p, static_cast<int>(*sent));
  }
}

}  // namespace ukai::security
