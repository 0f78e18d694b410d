#include "common/wire_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/process.h"
#include "common/status.h"
#include "common/wire_format.h"
#include "common/wire_socket.h"

namespace ukai::wire {

struct WireServer::Conn {
  Conn(int f, bool l, std::string p) : fd(f), local(l), peer_key(std::move(p)) {}
  ~Conn() {
    if (!stream) close(fd);  // else the stream closes it
  }
  const int fd;
  const bool local;                    // the same-host socket, not TCP
  const std::string peer_key;          // what the per-peer limits count: address or uid
  std::shared_ptr<ByteBudget> budget;  // the peer's request bytes, shared by its connections
  std::unique_ptr<WireStream> stream;  // set by the connection's thread before any request
  WirePeer peer;                       // likewise
  std::thread thread;
  std::atomic<bool> done{false};
  absl::Mutex write_mu;  // one reply at a time on the socket
  std::string site;      // from the client's kHello; read by the connection's thread
  absl::Duration delay;  // reply_delay_(site); set with it
};

// Bytes one request holds until it is answered, from the server's budget
// and its peer's.
class WireServer::Held {
 public:
  Held(ByteBudget* server, std::shared_ptr<ByteBudget> peer, uint64_t n)
      : server_(server), peer_(std::move(peer)), n_(n) {}
  ~Held() {
    server_->Give(n_);
    peer_->Give(n_);
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

 private:
  ByteBudget* const server_;
  const std::shared_ptr<ByteBudget> peer_;
  const uint64_t n_;
};

namespace {
constexpr int kBackgroundWorkers = 2;
// A request's data grows by at most this much ahead of the bytes received.
constexpr size_t kGrowBytes = 1 << 20;
// A connection keeps a data buffer this large between requests; a larger
// one (a big write) is given back.
constexpr size_t kKeepBytes = 4 << 20;

// True at most once a second per `last`: for warnings a peer can provoke.
bool LogNow(std::atomic<int64_t>* last) {
  int64_t now = absl::ToUnixSeconds(absl::Now());
  int64_t before = last->load();
  return now != before && last->compare_exchange_strong(before, now);
}
std::atomic<int64_t> last_refusal_log{0};

// A TLS handshake that takes longer than this is dropped.
constexpr absl::Duration kHandshakeTimeout = absl::Seconds(10);

// "uid N" of a same-host peer, for logs.
std::string LocalPeerName(int fd) {
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
  return absl::StrCat("uid ", cred.uid);
}

// "host:port" of a TCP peer, for logs.
std::string PeerAddress(int fd) {
  struct sockaddr_storage ss = {};
  socklen_t len = sizeof(ss);
  char host[INET6_ADDRSTRLEN] = "?";
  if (getpeername(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return host;
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<struct sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* in = reinterpret_cast<struct sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof(host));
    port = ntohs(in->sin6_port);
  }
  return absl::StrCat(host, ":", port);
}

// The host of a TCP peer (no port): what the per-peer limit counts.
std::string PeerHost(int fd) {
  std::string a = PeerAddress(fd);
  return a.substr(0, a.rfind(':'));
}
}  // namespace

WireServer::WireServer(WireHandler* handler, int workers, std::shared_ptr<WireSecurity> security,
                       WireLimits limits)
    : handler_(handler),
      security_(std::move(security)),
      limits_(limits),
      budget_(limits.max_request_bytes),
      nworkers_(workers) {}

WireServer::~WireServer() { Shutdown(); }

int WireServer::connections() {
  absl::MutexLock l(&mu_);
  int n = 0;
  for (const auto& c : conns_) n += c->done ? 0 : 1;
  return n;
}

absl::Status WireServer::Start(const std::string& address) {
  auto fd = ListenTcp(address, &port_);
  if (!fd.ok()) return fd.status();
  listen_fds_.push_back(*fd);
  auto ring = IoRing::Start();
  if (ring.ok()) {
    ring_ = std::move(*ring);
  } else {
    LOG_WARN("block I/O: %s; reads from disk go to worker threads", ring.status().ToString());
  }
  for (int i = 0; i < nworkers_; ++i) workers_.emplace_back([this] { WorkLoop(false); });
  for (int i = 0; i < kBackgroundWorkers; ++i) workers_.emplace_back([this] { WorkLoop(true); });
  acceptors_.emplace_back([this, l = *fd] { AcceptLoop(l, /*local=*/false); });
  if (reply_delay_) delayer_ = std::thread([this] { DelayLoop(); });
  return absl::OkStatus();
}

absl::Status WireServer::StartLocal(const std::string& run_dir, const std::string& advertised) {
  auto fd = ListenLocal(run_dir, advertised);
  if (!fd.ok()) return fd.status();
  listen_fds_.push_back(*fd);
  local_path_ = LocalSocketPath(run_dir, advertised);
  acceptors_.emplace_back([this, l = *fd] { AcceptLoop(l, /*local=*/true); });
  return absl::OkStatus();
}

void WireServer::AcceptLoop(int listen_fd, bool local) {
  while (true) {
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE) usleep(10000);
        continue;
      }
      return;  // shut down
    }
    if (local) {
      if (absl::Status s = CheckLocalPeer(fd); !s.ok()) {
        LOG_WARN("block I/O: refused a same-host connection: %s", s.message());
        close(fd);
        continue;
      }
    } else {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    struct timeval tv = absl::ToTimeval(limits_.send_timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    auto c = std::make_shared<Conn>(fd, local, local ? LocalPeerName(fd) : PeerHost(fd));
    absl::MutexLock l(&mu_);
    if (stopping_) return;  // c closes fd
    if (!Admit(c.get())) {
      if (LogNow(&last_refusal_log)) {
        LOG_WARN(
            "block I/O: refused a connection from %s: too many connections (at most %d, "
            "%d per peer)",
            c->peer_key, limits_.max_connections, limits_.max_connections_per_peer);
      }
      continue;  // c closes fd
    }
    c->thread = std::thread([this, c] { Serve(c); });
    conns_.push_back(std::move(c));
  }
}

bool WireServer::Admit(Conn* c) {
  // Reap connections that ended, so a long-lived server does not pile them up.
  int total = 0, same = 0;
  for (auto it = conns_.begin(); it != conns_.end();) {
    if ((*it)->done) {
      (*it)->thread.join();
      it = conns_.erase(it);
      continue;
    }
    ++total;
    if ((*it)->peer_key == c->peer_key) {
      ++same;
      c->budget = (*it)->budget;
    }
    ++it;
  }
  if (total >= limits_.max_connections || same >= limits_.max_connections_per_peer) return false;
  if (c->budget == nullptr) c->budget = std::make_shared<ByteBudget>(limits_.max_peer_bytes);
  return true;
}

absl::Status WireServer::Open(Conn* c) {
  if (c->local) {
    c->peer = WirePeer::Local(LocalPeerName(c->fd));
  } else if (security_ != nullptr) {
    ASSIGN_OR_RETURN(c->stream, security_->Accept(c->fd, kHandshakeTimeout, &c->peer));
    return absl::OkStatus();
  }
  c->stream = std::make_unique<WireStream>(c->fd);
  return absl::OkStatus();
}

void WireServer::Serve(std::shared_ptr<Conn> c) {
  std::string from = c->local ? "this host" : PeerAddress(c->fd);  // before the peer can leave
  if (absl::Status s = Open(c.get()); !s.ok()) {
    LOG_WARN("block I/O: refused a connection from %s: %s", from, s.message());
    shutdown(c->fd, SHUT_RDWR);  // the peer learns now, not when the next accept reaps us
    c->done = true;
    return;
  }
  BufferedReader in(c->stream.get());
  std::string meta, data, reply;
  absl::Duration between = limits_.frame_timeout;  // the first frame must come
  absl::Status s;
  while (s.ok()) {
    in.set_timeout(between);
    s = in.Fill(1);  // a frame begins
    in.set_timeout(limits_.frame_timeout);
    if (s.ok()) s = in.Fill(kHeaderBytes);
    if (!s.ok()) break;
    Header h;
    if (!DecodeHeader(in.data(), &h)) {
      s = absl::InvalidArgumentError("malformed frame header");
      break;
    }
    in.Skip(kHeaderBytes);
    std::shared_ptr<Held> held = Reserve(c, h.meta_len + h.data_len + kRequestOverhead);
    if (held == nullptr) break;  // stopping
    s = ReadBody(&in, h, &meta, &data);
    if (s.ok()) Dispatch(c, h, meta, data, &reply, std::move(held));
    between = absl::ZeroDuration();  // a connection that spoke may idle
  }
  if (absl::IsDeadlineExceeded(s) || absl::IsInvalidArgument(s)) {
    if (LogNow(&last_refusal_log)) {
      LOG_WARN("block I/O: closing the connection from %s: %s", from, s.message());
    }
  }
  c->stream->Break();
  c->done = true;
}

std::shared_ptr<WireServer::Held> WireServer::Reserve(const std::shared_ptr<Conn>& c, uint64_t n) {
  // Waits in slices, so that a server that stops is noticed.
  auto stopping = [this] {
    absl::MutexLock l(&mu_);
    return stopping_;
  };
  while (!c->budget->Take(n, absl::Now() + absl::Seconds(1))) {
    if (stopping() || n > c->budget->limit()) return nullptr;
  }
  while (!budget_.Take(n, absl::Now() + absl::Seconds(1))) {
    if (stopping() || n > budget_.limit()) {
      c->budget->Give(n);
      return nullptr;
    }
  }
  return std::make_shared<Held>(&budget_, c->budget, n);
}

absl::Status WireServer::ReadBody(BufferedReader* in, const Header& h, std::string* meta,
                                  std::string* data) {
  meta->resize(h.meta_len);  // at most kMaxMetaBytes
  RETURN_IF_ERROR(in->Take(h.meta_len, meta->data()));
  if (data->capacity() > kKeepBytes) std::string().swap(*data);
  data->clear();
  while (data->size() < h.data_len) {
    size_t old = data->size();
    data->resize(old + std::min<size_t>(h.data_len - old, kGrowBytes));
    RETURN_IF_ERROR(in->Take(data->size() - old, data->data() + old));
  }
  return absl::OkStatus();
}

void WireServer::Dispatch(const std::shared_ptr<Conn>& c, const Header& h, std::string& meta,
                          std::string& data, std::string* reply, std::shared_ptr<Held> held) {
  if (h.method == kHello) {
    c->site = meta.substr(0, kMaxSiteBytes);
    c->delay = reply_delay_ ? reply_delay_(c->site) : absl::ZeroDuration();
    Reply(c, h.tag, h.method, absl::OkStatus(), "");
    return;
  }
  const bool background = handler_->Background(h.method);
  if (!background && !handler_->Slow(h.method)) {
    reply->clear();
    std::unique_ptr<WireHandler::Deferred> deferred;
    absl::Status s =
        handler_->HandleNoWait(c->peer, h.method, meta, data, reply, ring_ ? &deferred : nullptr);
    if (!IsWouldBlock(s)) return Reply(c, h.tag, h.method, s, *reply);
    if (deferred) {
      ring_->Read(std::move(deferred),
                  [this, c, held, tag = h.tag, method = h.method](DiskReads& d) {
                    std::string out;
                    absl::Status st = static_cast<WireHandler::Deferred&>(d).Finish(&out);
                    Reply(c, tag, method, st, out);
                  });
      return;
    }
  }
  absl::MutexLock l(&mu_);
  if (stopping_) return;
  (background ? background_ : tasks_)
      .push_back(Task{c, h.tag, h.method, std::move(meta), std::move(data), std::move(held)});
}

void WireServer::WorkLoop(bool background) {
  if (background) SetThreadNice(kBackgroundNice);
  std::deque<Task>& queue = background ? background_ : tasks_;
  using Wait = std::pair<WireServer*, std::deque<Task>*>;
  Wait wait{this, &queue};
  std::string reply;
  while (true) {
    Task t;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(
          +[](Wait* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return w->first->stopping_ || !w->second->empty();
          },
          &wait));
      if (queue.empty()) return;  // stopping, and nothing left
      t = std::move(queue.front());
      queue.pop_front();
    }
    reply.clear();
    absl::Status s =
        handler_->Handle(t.conn->peer, t.method, t.meta, t.data, &reply, /*may_block=*/true);
    Reply(t.conn, t.tag, t.method, s, reply);
  }
}

void WireServer::Reply(const std::shared_ptr<Conn>& c, uint64_t tag, uint16_t method,
                       const absl::Status& s, const std::string& data) {
  Header h;
  h.method = method;
  h.status = EncodeWireStatus(s);
  h.tag = tag;
  absl::string_view msg = s.message().substr(0, kMaxMetaBytes);
  h.meta_len = static_cast<uint32_t>(msg.size());
  h.data_len = s.ok() ? static_cast<uint32_t>(data.size()) : 0;
  char hdr[kHeaderBytes];
  EncodeHeader(h, hdr);
  struct iovec iov[3] = {{hdr, kHeaderBytes},
                         {const_cast<char*>(msg.data()), msg.size()},
                         {const_cast<char*>(data.data()), h.data_len}};
  if (c->delay > absl::ZeroDuration() && method != kHello) {  // test-only: sites far apart
    std::string frame(hdr, kHeaderBytes);
    frame.append(msg.data(), msg.size());
    frame.append(data.data(), h.data_len);
    absl::MutexLock l(&mu_);
    delayed_.emplace(absl::Now() + c->delay, Delayed{c, std::move(frame)});
    ++delayed_queued_;
    return;
  }
  absl::MutexLock l(&c->write_mu);
  // A failed send means the client is gone; its reader ends the connection.
  (void)c->stream->WriteAll(iov, 3);
}

void WireServer::DelayLoop() {
  absl::MutexLock l(&mu_);
  while (!stopping_) {
    // Sleep until the earliest reply is due, or until one is queued (it may
    // be due sooner when the queue was empty).
    const absl::Time until = delayed_.empty() ? absl::InfiniteFuture() : delayed_.begin()->first;
    const uint64_t seen = delayed_queued_;
    struct Arg {
      WireServer* w;
      uint64_t seen;
    } arg{this, seen};
    mu_.AwaitWithDeadline(absl::Condition(
                              +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                return a->w->stopping_ || a->w->delayed_queued_ != a->seen;
                              },
                              &arg),
                          until);
    while (!stopping_ && !delayed_.empty() && delayed_.begin()->first <= absl::Now()) {
      Delayed d = std::move(delayed_.begin()->second);
      delayed_.erase(delayed_.begin());
      mu_.Unlock();
      struct iovec iov = {d.frame.data(), d.frame.size()};
      {
        absl::MutexLock w(&d.conn->write_mu);
        (void)d.conn->stream->WriteAll(&iov, 1);
      }
      mu_.Lock();
    }
  }
}

void WireServer::Shutdown() {
  std::list<std::shared_ptr<Conn>> conns;
  {
    absl::MutexLock l(&mu_);
    if (stopping_ || listen_fds_.empty()) return;
    stopping_ = true;
    conns.swap(conns_);
  }
  for (int fd : listen_fds_) shutdown(fd, SHUT_RDWR);
  for (auto& a : acceptors_) a.join();
  for (int fd : listen_fds_) close(fd);
  if (!local_path_.empty()) unlink(local_path_.c_str());
  for (auto& c : conns) shutdown(c->fd, SHUT_RDWR);
  for (auto& c : conns) c->thread.join();
  for (auto& w : workers_) w.join();  // after the queue drained
  ring_.reset();                      // after its reads are answered
  if (delayer_.joinable()) delayer_.join();
  absl::MutexLock l(&mu_);
  delayed_.clear();
}

}  // namespace ukai::wire
