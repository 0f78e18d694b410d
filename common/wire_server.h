// WireServer: the node side of the block I/O transport (wire_format.h). One
// thread per connection reads frames and runs each request inline, so a
// burst of pipelined requests costs one wake-up, not one per request; a
// method the handler calls slow (a flush waiting for the disk) runs on its
// own thread and answers when done, so the connection keeps moving. Replies
// carry the handler's status code and message.
//
// Thread safety: Start and Shutdown from one owner thread; the handler is
// called concurrently from every connection's thread.
#ifndef UKAI_COMMON_WIRE_SERVER_H_
#define UKAI_COMMON_WIRE_SERVER_H_

#include <atomic>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace ukai::wire {

class WireHandler {
 public:
  virtual ~WireHandler() = default;
  // Runs one request. `meta` and `data` live until it returns. On OK,
  // `reply_data` (empty on entry) holds the reply's data section.
  virtual absl::Status Handle(uint16_t method, absl::string_view meta, absl::string_view data,
                              std::string* reply_data) = 0;
  // True for methods that may block for long; they run off the connection's thread.
  virtual bool Slow(uint16_t method) const = 0;
};

class WireServer {
 public:
  explicit WireServer(WireHandler* handler) : handler_(handler) {}
  ~WireServer();

  // Listens on "host:port" (port 0: any free port) and starts accepting.
  // UNAVAILABLE naming the address when it cannot listen.
  absl::Status Start(const std::string& address);
  // The bound port (after Start).
  int port() const { return port_; }
  // Stops accepting, closes every connection and waits for every thread.
  // Calls in progress finish; their replies may be lost. Idempotent.
  void Shutdown();

 private:
  struct Conn;
  void AcceptLoop();
  void Serve(std::shared_ptr<Conn> c);
  void Reply(Conn* c, uint64_t tag, uint16_t method, const absl::Status& s,
             const std::string& data);
  void RunSlow(std::shared_ptr<Conn> c, uint64_t tag, uint16_t method, std::string meta,
               std::string data);

  WireHandler* const handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::list<std::shared_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
  int slow_running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ukai::wire

#endif  // UKAI_COMMON_WIRE_SERVER_H_
