// WireClient: the client side of the block I/O transport (wire_format.h) to
// one node. Calls are pipelined on one connection: the caller's thread sends
// the frame (no hand-off to a sender thread), one reader thread matches
// replies by tag and receives a reply's data straight into the caller's
// buffer. The connection is made on first use and again after it breaks.
//
//   WireCall call;                      // fill method, meta, data, out
//   WireWaiter w;
//   client.Start(&call, &w);            // as many calls as wanted, any clients
//   w.WaitAll(deadline);
//
// or, without a waiting thread: set call.on_done and call.deadline and
// Start(&call, nullptr); on_done runs once, on the reader thread (or in Start
// when the connection cannot be made), and must not block: it holds up every
// reply behind it on that connection.
//
// Thread-safe. A call is completed exactly once: OK with the reply, the
// node's error code and message, UNAVAILABLE when the connection fails, or
// DEADLINE_EXCEEDED when WaitAll gives up on it.
#ifndef UKAI_COMMON_WIRE_CLIENT_H_
#define UKAI_COMMON_WIRE_CLIENT_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/wire_stream.h"

namespace ukai::wire {

class WireClient;
class WireWaiter;
struct WireConn;

struct WireCall {
  // In: the request. `data` is only read during Start.
  uint16_t method = 0;
  std::string meta;
  const char* data = nullptr;
  size_t data_len = 0;
  // In: where a reply's data section goes (at most `out_cap` bytes).
  char* out = nullptr;
  size_t out_cap = 0;
  // In, for calls started without a waiter: the completion, and when the
  // call fails with DEADLINE_EXCEEDED if no reply came (checked a few times
  // a second).
  std::function<void()> on_done;
  absl::Time deadline = absl::InfiniteFuture();
  // Out, valid once the call's waiter (or on_done) says so.
  absl::Status status;
  size_t out_len = 0;

 private:
  friend class WireClient;
  friend class WireWaiter;
  friend struct WireConn;
  WireWaiter* waiter_ = nullptr;
  std::shared_ptr<WireConn> conn_;
  uint64_t tag_ = 0;
  bool done_ = false;  // guarded by conn_->mu
};

// Counts calls down to zero. One waiter may span calls to several clients.
class WireWaiter {
 public:
  // Waits until every call started with this waiter completed, or until
  // `deadline`; calls still open then are cancelled (DEADLINE_EXCEEDED).
  // Returns only when no call is in the clients' hands any more.
  void WaitAll(absl::Time deadline);

 private:
  friend class WireClient;
  friend struct WireConn;
  void Add() {
    absl::MutexLock l(&mu_);
    ++open_;
  }
  void Done() {
    absl::MutexLock l(&mu_);
    --open_;
  }
  absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<WireCall*> calls_;  // owner thread only
};

struct WireClientOptions {
  absl::Duration connect_timeout = absl::Seconds(2);
  // A send blocked longer than this (a node that stopped reading) fails the connection.
  absl::Duration send_timeout = absl::Seconds(10);
  // Where same-host sockets are (a run directory, ListenLocal in
  // wire_socket.h): the node's is tried before TCP. Empty: TCP only.
  std::string local_dir;
  // Makes TCP connections mutual TLS (security/wire_tls.h); null: plaintext.
  // Same-host sockets never use it.
  std::shared_ptr<WireSecurity> security;
  // This client's site, told to the node first on every connection (kHello).
  std::string site;
  // The reader thread's nice value (0: the process's): kBackgroundNice for
  // a copy's connections, whose replies carry megabytes.
  int reader_nice = 0;
};

class WireClient {
 public:
  WireClient(std::string address, WireClientOptions opts = {});
  ~WireClient();  // fails calls still open (UNAVAILABLE)
  WireClient(const WireClient&) = delete;
  WireClient& operator=(const WireClient&) = delete;

  // Sends `call` and registers it with `waiter` (nullptr: completes through
  // call->on_done). On a connect or send failure the call completes with
  // UNAVAILABLE naming the address.
  void Start(WireCall* call, WireWaiter* waiter);
  const std::string& address() const { return address_; }
  // Whether the current connection is the same-host socket (for tests and
  // `ukaictl`-style diagnostics); false when there is none.
  bool local() const;

 private:
  std::shared_ptr<WireConn> Connection(absl::Status* error);
  // A new stream to the node: its same-host socket when it has one, else TCP
  // (made secure by opts_.security).
  absl::StatusOr<std::unique_ptr<WireStream>> Dial() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SayHello(WireStream* stream);
  // Fails calls without a waiter whose deadline passed; runs while any exist.
  void ReapLoop();

  const std::string address_;
  const WireClientOptions opts_;
  mutable absl::Mutex mu_;  // guards the current connection; taken before WireConn::mu
  std::shared_ptr<WireConn> conn_ ABSL_GUARDED_BY(mu_);
  bool conn_local_ ABSL_GUARDED_BY(mu_) = false;
  bool local_dialed_ ABSL_GUARDED_BY(mu_) = false;  // Dial's last stream is the local socket
  std::vector<std::shared_ptr<WireConn>> retired_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> next_tag_{1};
  std::thread reaper_;  // started with the first call that has no waiter
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ukai::wire

#endif  // UKAI_COMMON_WIRE_CLIENT_H_
