// TlsStream (internal to security/): one block I/O connection under TLS.
//
// OpenSSL never touches the socket: it reads and writes a BIO pair, and the
// stream moves ciphertext between the pair and the socket itself, outside
// the lock around the SSL object. So the connection's reader waits in
// recv() and its writers in send() without holding each other up (on a
// loopback or veth link a send runs much of the receiver's network stack
// too), and a frame of many records leaves in a few large sends, not one
// per 16 KiB record. After the handshake the socket is blocking, like a
// plaintext stream's, and a send gives up after the stream's send timeout
// (SO_SNDTIMEO).
#ifndef UKAI_SECURITY_TLS_STREAM_H_
#define UKAI_SECURITY_TLS_STREAM_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/wire_stream.h"
#include "security/revocations.h"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace ukai::security {

// What OpenSSL's error queue says, emptied; `what` when it says nothing.
std::string SslErrors(const std::string& what);

// Gives `ssl` a new BIO pair to read and write; returns the pair's other
// end, the stream's side (the caller frees it after `ssl`), or null.
BIO* AttachPipe(SSL* ssl);

// Runs the handshake of `ssl` (its pair's other end: `network`) over socket
// `fd`, made non-blocking for it, until done or `deadline`. Whatever OpenSSL
// has to tell the peer is sent, an alert on failure included.
// PERMISSION_DENIED when a certificate was refused, DEADLINE_EXCEEDED,
// UNAVAILABLE otherwise.
absl::Status Handshake(SSL* ssl, BIO* network, int fd, absl::Time deadline);

class TlsStream final : public wire::WireStream {
 public:
  // Owns `fd`, `ssl` and `network` (Handshake's, after it succeeded) and
  // makes the socket blocking. `serial`: the peer certificate's, looked up
  // in `revocations` at most once a second while reading (null: never).
  TlsStream(int fd, SSL* ssl, BIO* network, absl::Duration send_timeout, std::string serial,
            std::shared_ptr<Revocations> revocations);
  ~TlsStream() override;

  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  absl::Status WriteAll(struct iovec* iov, int iovcnt) override;

 private:
  // Seals `n` bytes into records in the pair, sending when it is full.
  absl::Status Seal(const char* p, size_t n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  // Sends everything the pair holds for the peer.
  absl::Status Flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(send_mu_);
  absl::Status CheckNotRevoked();

  SSL* const ssl_;
  BIO* const network_;
  const std::string serial_;
  const std::shared_ptr<Revocations> revocations_;
  absl::Mutex mu_;                                 // around every OpenSSL call on ssl_ and network_
  absl::Mutex send_mu_;                            // one sender at a time: a writer, or the reader
  std::string pending_ ABSL_GUARDED_BY(send_mu_);  // a record being filled
  absl::Time next_check_;                          // the reader's
};

}  // namespace ukai::security

#endif  // UKAI_SECURITY_TLS_STREAM_H_
