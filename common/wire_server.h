// WireServer: the node side of the block I/O transport (wire_format.h). One
// thread per connection reads frames and runs each request inline when it
// can finish without waiting for a disk, so a burst of pipelined requests
// costs one wake-up, not one per request. A request that would wait only for
// file reads (a read of pages not in memory) leaves them to an io_uring
// (common/io_ring.h) and is answered from its thread; any other that would
// wait, or that the handler calls slow (a flush), goes to a pool of worker
// threads. Either way the connection keeps moving and the disk sees many
// requests at once. Replies carry the handler's status code and message.
//
// Thread safety: Start and Shutdown from one owner thread; the handler is
// called concurrently from every connection's thread.
#ifndef UKAI_COMMON_WIRE_SERVER_H_
#define UKAI_COMMON_WIRE_SERVER_H_

#include <atomic>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/byte_budget.h"
#include "common/io_ring.h"
#include "common/wire_format.h"
#include "common/wire_socket.h"
#include "common/wire_stream.h"

namespace ukai::wire {

class WireHandler {
 public:
  virtual ~WireHandler() = default;
  // Runs one request from `peer` (who the connection is: the handler
  // authorizes by it). `meta` and `data` live until it returns. On OK,
  // `reply_data` (empty on entry) holds the reply's data section. With
  // `may_block` false it must not wait for a disk: it returns
  // ukai::WouldBlock() (common/status.h) instead, and is called again on a
  // worker with `may_block` true.
  virtual absl::Status Handle(const WirePeer& peer, uint16_t method, absl::string_view meta,
                              absl::string_view data, std::string* reply_data, bool may_block) = 0;
  // True for methods that always block for long; they go to a worker at once.
  virtual bool Slow(uint16_t method) const = 0;
  // True for background work (a copy's pulls): it goes to a worker of its
  // own pool, at kBackgroundNice, so it never queues before foreground
  // requests nor takes the CPU from them.
  virtual bool Background(uint16_t /*method*/) const { return false; }
  // Handle with `may_block` false, where a request that would wait only for
  // file reads may leave them to the server: it returns WouldBlock() with
  // `*deferred` set, the server reads its ranges (IoRing) and replies with
  // what Finish gives. `deferred` is null when the server has no ring. The
  // default never defers.
  class Deferred : public DiskReads {
   public:
    // After the reads: the reply, as Handle would give it.
    virtual absl::Status Finish(std::string* reply_data) = 0;
  };
  virtual absl::Status HandleNoWait(const WirePeer& peer, uint16_t method, absl::string_view meta,
                                    absl::string_view data, std::string* reply_data,
                                    std::unique_ptr<Deferred>* /*deferred*/) {
    return Handle(peer, method, meta, data, reply_data, /*may_block=*/false);
  }
};

// What one server lets its peers take (docs/SECURITY.md, "Limits"). A peer
// over a limit is pushed back (its connection is not read until its own
// requests are answered) or refused; the others are not held up.
struct WireLimits {
  // Connections open at once, and from one peer: a TCP address, or a uid on
  // the same-host socket. Beyond them a connection is closed at accept.
  int max_connections = 1024;
  int max_connections_per_peer = 64;
  // Request bytes (meta and data, and kRequestOverhead each) held at once
  // for requests read and not yet answered: by the whole server, and by one
  // peer. A frame's bytes are reserved from both when its header arrives
  // (a peer over its share waits, and so stops reading its connections);
  // its memory grows as the bytes do.
  uint64_t max_request_bytes = 1ull << 30;
  uint64_t max_peer_bytes = 256ull << 20;
  // A frame begun must keep arriving: a receive inside a frame waits this
  // long at most. So must a connection's first frame after the handshake.
  absl::Duration frame_timeout = absl::Seconds(30);
  // A reply the peer does not take within this long ends its connection.
  absl::Duration send_timeout = absl::Seconds(30);
};
// Counted for every request on top of its bytes: its bookkeeping.
constexpr uint64_t kRequestOverhead = 512;

class WireServer {
 public:
  // `workers`: threads for requests that block (reads from disk, flushes);
  // two more serve background requests. `security` makes every TCP
  // connection mutual TLS (security/wire_tls.h); null: plaintext.
  explicit WireServer(WireHandler* handler, int workers = 16,
                      std::shared_ptr<WireSecurity> security = nullptr,
                      WireLimits limits = WireLimits());
  ~WireServer();

  // Listens on "host:port" (port 0: any free port) and starts accepting.
  // UNAVAILABLE naming the address when it cannot listen.
  absl::Status Start(const std::string& address);
  // Also listens on the same-host socket in `run_dir` for `advertised`, the
  // address clients know this server by (ListenLocal in wire_socket.h), and
  // serves only peers of root or this user there. After Start.
  absl::Status StartLocal(const std::string& run_dir, const std::string& advertised);
  // Test-only (sites far apart on one machine, docs/TESTING.md): every reply
  // to a connection whose client said it is in site S (kHello) goes out
  // `delay(S)` late, without holding up the replies behind it. Before Start.
  void SetReplyDelay(std::function<absl::Duration(const std::string& site)> delay) {
    reply_delay_ = std::move(delay);
  }
  // The bound port (after Start).
  int port() const { return port_; }
  // Request bytes held now (reserved, not yet answered), and connections open.
  uint64_t held_bytes() const { return budget_.used(); }
  int connections();
  // Stops accepting, closes every connection and waits for every thread.
  // Calls in progress finish; their replies may be lost. Idempotent.
  void Shutdown();

 private:
  struct Conn;
  class Held;
  void AcceptLoop(int listen_fd, bool local);
  // Whether new connection `c` fits the limits, and if so gives it its
  // peer's budget; reaps connections that ended.
  bool Admit(Conn* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reserves `n` bytes for a request of `c`, waiting for room; null when
  // the server stops or the bytes can never fit.
  std::shared_ptr<Held> Reserve(const std::shared_ptr<Conn>& c, uint64_t n);
  // Reads one request's meta and data, growing them as bytes arrive.
  static absl::Status ReadBody(BufferedReader* in, const Header& h, std::string* meta,
                               std::string* data);
  // Runs or queues one request (`reply`: the connection's scratch). Queued,
  // it takes `meta` and `data`.
  void Dispatch(const std::shared_ptr<Conn>& c, const Header& h, std::string& meta,
                std::string& data, std::string* reply, std::shared_ptr<Held> held);
  // Sets up a new connection's stream and peer (the TLS handshake).
  absl::Status Open(Conn* c);
  void Serve(std::shared_ptr<Conn> c);
  void Reply(const std::shared_ptr<Conn>& c, uint64_t tag, uint16_t method, const absl::Status& s,
             const std::string& data);
  struct Task {
    std::shared_ptr<Conn> conn;
    uint64_t tag;
    uint16_t method;
    std::string meta, data;
    std::shared_ptr<Held> held;  // given back when the task is done
  };
  void WorkLoop(bool background);
  void DelayLoop();
  struct Delayed {
    std::shared_ptr<Conn> conn;
    std::string frame;
  };
  std::function<absl::Duration(const std::string&)> reply_delay_;
  std::multimap<absl::Time, Delayed> delayed_ ABSL_GUARDED_BY(mu_);
  uint64_t delayed_queued_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread delayer_;

  WireHandler* const handler_;
  const std::shared_ptr<WireSecurity> security_;
  const WireLimits limits_;
  ByteBudget budget_;
  std::unique_ptr<IoRing> ring_;  // null when the kernel has no io_uring: workers read
  int port_ = 0;
  std::vector<int> listen_fds_;  // TCP, then the local socket if any
  std::string local_path_;       // the local socket's file, removed at Shutdown
  std::vector<std::thread> acceptors_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::list<std::shared_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
  const int nworkers_;
  std::vector<std::thread> workers_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::deque<Task> background_ ABSL_GUARDED_BY(mu_);  // for the background workers
};

}  // namespace ukai::wire

#endif  // UKAI_COMMON_WIRE_SERVER_H_
