// Socket helpers shared by the wire client and server (internal to common/):
// address parsing, listen, connect with a time limit, and whole-buffer reads
// and writes that survive partial transfers and EINTR.
#ifndef UKAI_COMMON_WIRE_SOCKET_H_
#define UKAI_COMMON_WIRE_SOCKET_H_

#include <sys/uio.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/wire_stream.h"

namespace ukai::wire {

// "host:port" (host may be a name or an IPv4 address; port 0 picks one).
// Returns a listening, close-on-exec socket; `*port` gets the bound port.
absl::StatusOr<int> ListenTcp(const std::string& address, int* port);
// Connects within `timeout`; UNAVAILABLE naming the address otherwise. The
// socket is blocking, TCP_NODELAY, with send calls limited to `send_timeout`.
absl::StatusOr<int> ConnectTcp(const std::string& address, absl::Duration timeout,
                               absl::Duration send_timeout);
// The same-host path: a Unix socket file `<run_dir>/io-<address>.sock`, named
// after a node's advertised block I/O address. The directory is made 0700
// (an existing one must belong to this user or root and be writable by
// nobody else) and the socket 0600; both ends check the other's credentials
// (SO_PEERCRED): only root or this process's own user may be the peer. A
// frame then costs two socket copies instead of a trip through the TCP stack
// (docs/ARCHITECTURE.md, performance notes), and needs no TLS: it never
// leaves the host.
std::string LocalSocketPath(const std::string& run_dir, const std::string& address);
// Replaces a stale socket file left by an earlier process; refuses to
// replace anything else.
absl::StatusOr<int> ListenLocal(const std::string& run_dir, const std::string& address);
// UNAVAILABLE when nothing listens there; PERMISSION_DENIED when the peer is
// not root or this user (someone else's socket: never talk to it).
absl::StatusOr<int> ConnectLocal(const std::string& run_dir, const std::string& address,
                                 absl::Duration send_timeout);
// OK when the peer of a connected Unix socket is root or this process's user.
absl::Status CheckLocalPeer(int fd);
// Reads frames from a stream through one buffer: many small frames per recv
// call, and large payloads received straight into their destination.
// Not thread-safe; one reader thread owns it.
class BufferedReader {
 public:
  explicit BufferedReader(WireStream* stream, size_t capacity = 256 << 10)
      : stream_(stream), buf_(capacity) {}
  // Makes at least `n` (<= capacity) unconsumed bytes available at data().
  // OUT_OF_RANGE on a clean close with nothing buffered, UNAVAILABLE otherwise.
  absl::Status Fill(size_t n);
  const char* data() const { return buf_.data() + pos_; }
  void Skip(size_t n) { pos_ += n; }
  // Moves the next `n` bytes of a frame being read to `out` (nullptr:
  // discards them). UNAVAILABLE if the stream ends first.
  absl::Status Take(size_t n, char* out);
  // How long each later receive may wait (zero: for ever); applied to the
  // stream only when a receive is needed. DEADLINE_EXCEEDED past it.
  void set_timeout(absl::Duration d) { timeout_ = d; }
  size_t buffered() const { return end_ - pos_; }

 private:
  absl::StatusOr<size_t> Receive(char* out, size_t n) {
    stream_->SetReadTimeout(timeout_);
    return stream_->Read(out, n);
  }
  WireStream* const stream_;
  absl::Duration timeout_ = absl::ZeroDuration();
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;  // unconsumed bytes: [pos_, end_)
};

// "host:port" with the port replaced.
std::string WithPort(const std::string& address, int port);

}  // namespace ukai::wire

#endif  // UKAI_COMMON_WIRE_SOCKET_H_
