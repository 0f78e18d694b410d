// The byte stream under one block I/O connection (docs/PROTOCOL.md, "Block
// I/O transport"): the socket itself (same-host sockets, and TCP under
// --insecure-plaintext), or TLS over it (security/wire_tls.h). WireSecurity
// makes streams; the wire client and server only read and write them.
#ifndef UKAI_COMMON_WIRE_STREAM_H_
#define UKAI_COMMON_WIRE_STREAM_H_

#include <sys/uio.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ukai::wire {

// Who is at the other end of a connection, as a node's handler sees it.
// Made once per connection; its name is made with it, because the node
// compares it with a disk's writer identity on every write.
class WirePeer {
 public:
  enum class Kind {
    kUnauthenticated,  // plaintext TCP (--insecure-plaintext): anyone
    kLocal,            // same-host socket: root or the node's own user
    kCertified,        // mutual TLS: the certificate's role and id
  };
  WirePeer() = default;  // kUnauthenticated
  // `role`: "node", "frontend", "admin", "backup"; `id`: the certificate's.
  static WirePeer Certified(std::string role, std::string id);
  // `id`: the peer's credentials, e.g. "uid 0".
  static WirePeer Local(std::string id);

  Kind kind() const { return kind_; }
  const std::string& role() const { return role_; }  // kCertified only
  const std::string& id() const { return id_; }
  // For writer identities, logs and refusals: "frontend hv7", "same-host
  // uid 0", "unauthenticated peer".
  const std::string& ToString() const { return name_; }

 private:
  Kind kind_ = Kind::kUnauthenticated;
  std::string role_, id_;
  std::string name_ = "unauthenticated peer";
};

class WireStream {
 public:
  // Takes `fd`, a connected socket, and closes it when destroyed.
  explicit WireStream(int fd) : fd_(fd) {}
  virtual ~WireStream();
  WireStream(const WireStream&) = delete;
  WireStream& operator=(const WireStream&) = delete;

  int fd() const { return fd_; }
  // Up to `n` bytes into `buf`: how many were read, 0 at a clean end of the
  // stream, UNAVAILABLE on a broken one. One reader thread at a time.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n);
  // Writes every byte of `iov` (modified in place), never raising SIGPIPE.
  // May run while another thread is in Read; writers take turns (the
  // caller's lock). UNAVAILABLE on any error.
  virtual absl::Status WriteAll(struct iovec* iov, int iovcnt);
  // Makes a Read or WriteAll blocked on another thread return at once, and
  // every later one fail.
  void Break();
  // A Read waiting longer than `d` for bytes fails with DEADLINE_EXCEEDED
  // (zero: never). The reader's; no system call when `d` is unchanged.
  void SetReadTimeout(absl::Duration d);

 private:
  const int fd_;
  absl::Duration read_timeout_ = absl::ZeroDuration();
};

// How connections are made safe: implemented by security/ (mutual TLS),
// given to wire clients and servers through their constructors. Without one
// a TCP connection is plaintext.
class WireSecurity {
 public:
  virtual ~WireSecurity() = default;
  // The client side of a new TCP connection to the node at `address`,
  // within `timeout`; a send blocked longer than `send_timeout` later fails.
  // The stream owns `fd` only on success.
  virtual absl::StatusOr<std::unique_ptr<WireStream>> Connect(int fd, const std::string& address,
                                                              absl::Duration timeout,
                                                              absl::Duration send_timeout) = 0;
  // The server side of an accepted TCP connection, within `timeout`; sets
  // `*peer`. The stream owns `fd` only on success.
  virtual absl::StatusOr<std::unique_ptr<WireStream>> Accept(int fd, absl::Duration timeout,
                                                             WirePeer* peer) = 0;
};

}  // namespace ukai::wire

#endif  // UKAI_COMMON_WIRE_STREAM_H_
