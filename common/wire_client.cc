#include "common/wire_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <unordered_map>

#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/process.h"
#include "common/reason.h"
#include "common/wire_format.h"
#include "common/wire_socket.h"

namespace ukai::wire {

// One TCP connection and its reader thread. Shared by its WireClient and the
// reader (which keeps it alive until it ends); calls keep a reference only to
// find it when cancelled.
struct WireConn {
  WireConn(std::unique_ptr<WireStream> s, std::string addr)
      : stream(std::move(s)), address(std::move(addr)) {}
  ~WireConn() {
    if (reader.joinable()) reader.detach();  // the reader itself held the last reference
  }
  // Waits for the reader to end, unless this is the reader (a completion that
  // dropped the last reference to its own client): it ends by itself.
  void JoinReader() {
    if (!reader.joinable()) return;
    if (reader.get_id() == std::this_thread::get_id()) {
      reader.detach();
    } else {
      reader.join();
    }
  }

  // Completes `call` (which nobody else can reach any more) with `s`.
  static void Complete(WireCall* call, absl::Status s) {
    WireWaiter* w = call->waiter_;
    {
      absl::MutexLock l(&call->conn_->mu);
      call->status = std::move(s);
      call->done_ = true;
    }
    Finish(call, w);
  }
  // Tells the owner; the caller may free `call` from here on.
  static void Finish(WireCall* call, WireWaiter* w) {
    if (w != nullptr) return w->Done();
    std::function<void()> fn = std::move(call->on_done);
    fn();
  }
  // Takes the calls without a waiter whose deadline passed off `pending`; a
  // reply being received for one breaks the connection (its reader fails it).
  std::vector<WireCall*> TakeExpired(absl::Time now) {
    std::vector<WireCall*> out;
    absl::MutexLock l(&mu);
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second->waiter_ == nullptr && it->second->deadline < now) {
        out.push_back(it->second);
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    if (receiving != nullptr && receiving->waiter_ == nullptr && receiving->deadline < now) {
      stream->Break();
    }
    return out;
  }
  void ReadLoop();
  void Receive(const Header& h, BufferedReader* in, absl::Status* broken);

  const std::unique_ptr<WireStream> stream;  // closes the socket last
  const std::string address;
  std::thread reader;
  absl::Mutex send_mu;  // one frame at a time on the socket
  absl::Mutex mu;       // after WireClient::mu_
  std::unordered_map<uint64_t, WireCall*> pending ABSL_GUARDED_BY(mu);
  WireCall* receiving ABSL_GUARDED_BY(mu) = nullptr;  // taken off `pending`, data arriving
  bool dead ABSL_GUARDED_BY(mu) = false;
};

void WireConn::ReadLoop() {
  BufferedReader in(stream.get());
  absl::Status broken;
  while (broken.ok()) {
    broken = in.Fill(kHeaderBytes);
    if (!broken.ok()) break;
    Header h;
    if (!DecodeHeader(in.data(), &h)) {
      broken = absl::UnavailableError("malformed reply");
      break;
    }
    in.Skip(kHeaderBytes);
    Receive(h, &in, &broken);
  }
  std::vector<WireCall*> failed;
  {
    absl::MutexLock l(&mu);
    for (auto& [tag, call] : pending) failed.push_back(call);
    pending.clear();
    if (receiving != nullptr) failed.push_back(receiving);
    receiving = nullptr;
    dead = true;
  }
  stream->Break();
  for (WireCall* call : failed) {
    Complete(call, absl::UnavailableError(absl::StrFormat("node %s: connection lost (%s)", address,
                                                          broken.message())));
  }
}

// Receives one reply's meta and data. On a transport failure sets `*broken`
// and leaves the call in `receiving` for ReadLoop to fail.
void WireConn::Receive(const Header& h, BufferedReader* in, absl::Status* broken) {
  std::string msg(h.meta_len, '\0');
  if (!(*broken = in->Take(h.meta_len, msg.data())).ok()) return;
  WireCall* call = nullptr;
  {
    absl::MutexLock l(&mu);
    auto it = pending.find(h.tag);
    if (it != pending.end()) {
      call = it->second;
      pending.erase(it);
      receiving = call;
    }
  }
  absl::Status s;
  if (call == nullptr || h.status != 0 || h.data_len > call->out_cap) {
    if (!(*broken = in->Take(h.data_len, nullptr)).ok()) return;
    if (call == nullptr) return;  // cancelled meanwhile
    s = h.status != 0
            ? DecodeWireStatus(h.status, msg)
            : absl::InternalError(absl::StrFormat("node %s: %d-byte reply for a %d-byte buffer",
                                                  address, h.data_len, call->out_cap));
  } else {
    if (!(*broken = in->Take(h.data_len, call->out)).ok()) return;
    call->out_len = h.data_len;
  }
  {
    absl::MutexLock l(&mu);
    receiving = nullptr;
  }
  Complete(call, std::move(s));
}

void WireWaiter::WaitAll(absl::Time deadline) {
  bool timed_out;
  {
    absl::MutexLock l(&mu_);
    timed_out = !mu_.AwaitWithDeadline(absl::Condition(
                                           +[](int* n) { return *n == 0; }, &open_),
                                       deadline);
  }
  if (timed_out) {
    for (WireCall* call : calls_) {
      WireConn* c = call->conn_.get();
      if (c == nullptr) continue;  // completed in Start
      bool cancel = false;
      {
        absl::MutexLock l(&c->mu);
        if (call->done_) continue;
        if (c->pending.erase(call->tag_) > 0) {
          cancel = true;
        } else if (c->receiving == call) {
          c->stream->Break();  // its reader fails it at once
        }
      }
      if (cancel) {
        WireConn::Complete(call, absl::DeadlineExceededError(
                                     absl::StrFormat("node %s: no answer in time", c->address)));
      }
    }
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &open_));
  }
  calls_.clear();
}

WireClient::WireClient(std::string address, WireClientOptions opts)
    : address_(std::move(address)), opts_(opts) {}

WireClient::~WireClient() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (reaper_.joinable()) reaper_.join();
  absl::MutexLock l(&mu_);
  if (conn_) retired_.push_back(std::move(conn_));
  for (auto& c : retired_) {
    c->stream->Break();
    c->JoinReader();
  }
}

absl::StatusOr<std::unique_ptr<WireStream>> WireClient::Dial() {
  local_dialed_ = false;
  if (!opts_.local_dir.empty()) {
    absl::StatusOr<int> fd = ConnectLocal(opts_.local_dir, address_, opts_.send_timeout);
    if (fd.ok()) {
      local_dialed_ = true;
      return std::make_unique<WireStream>(*fd);
    }
    if (absl::IsPermissionDenied(fd.status())) {
      LOG_WARN("node %s: not using its same-host socket: %s", address_, fd.status().message());
    }
  }
  absl::StatusOr<int> fd = ConnectTcp(address_, opts_.connect_timeout, opts_.send_timeout);
  if (!fd.ok()) return fd.status();
  if (opts_.security == nullptr) return std::make_unique<WireStream>(*fd);
  auto stream = opts_.security->Connect(*fd, address_, opts_.connect_timeout, opts_.send_timeout);
  if (!stream.ok()) close(*fd);
  return stream;
}

absl::Status WireClient::SayHello(WireStream* stream) {
  if (opts_.site.empty()) return absl::OkStatus();
  Header h;  // first thing on the connection: who we are
  h.method = kHello;
  h.meta_len = static_cast<uint32_t>(std::min<size_t>(opts_.site.size(), kMaxSiteBytes));
  char hdr[kHeaderBytes];
  EncodeHeader(h, hdr);
  struct iovec iov[2] = {{hdr, kHeaderBytes}, {const_cast<char*>(opts_.site.data()), h.meta_len}};
  return stream->WriteAll(iov, 2);
}

std::shared_ptr<WireConn> WireClient::Connection(absl::Status* error) {
  absl::MutexLock l(&mu_);
  if (conn_) {
    absl::MutexLock cl(&conn_->mu);
    if (!conn_->dead) return conn_;
  }
  if (conn_) retired_.push_back(std::move(conn_));
  for (auto& c : retired_) c->JoinReader();  // dead: their readers are ending
  retired_.clear();
  absl::StatusOr<std::unique_ptr<WireStream>> stream = Dial();
  conn_local_ = stream.ok() && local_dialed_;
  absl::Status s = stream.ok() ? SayHello(stream->get()) : stream.status();
  if (!s.ok()) {
    *error = absl::UnavailableError(absl::StrFormat("node %s: %s", address_, s.message()));
    return nullptr;
  }
  conn_ = std::make_shared<WireConn>(std::move(*stream), address_);
  // The reader keeps its connection alive until it ends.
  conn_->reader = std::thread([c = conn_, nice = opts_.reader_nice] {
    if (nice != 0) SetThreadNice(nice);
    c->ReadLoop();
  });
  return conn_;
}

bool WireClient::local() const {
  absl::MutexLock l(&mu_);
  return conn_ != nullptr && conn_local_;
}

void WireClient::ReapLoop() {
  absl::MutexLock l(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(200))) {
    std::shared_ptr<WireConn> c = conn_;
    if (c == nullptr) continue;
    mu_.Unlock();
    for (WireCall* call : c->TakeExpired(absl::Now())) {
      WireConn::Complete(call, absl::DeadlineExceededError(
                                   absl::StrFormat("node %s: no answer in time", address_)));
    }
    mu_.Lock();
  }
}

void WireClient::Start(WireCall* call, WireWaiter* waiter) {
  call->waiter_ = waiter;
  call->done_ = false;
  call->out_len = 0;
  call->conn_.reset();
  if (waiter != nullptr) {
    waiter->Add();
    waiter->calls_.push_back(call);
  } else {
    absl::MutexLock l(&mu_);
    if (!reaper_.joinable() && !stopping_) reaper_ = std::thread([this] { ReapLoop(); });
  }
  absl::Status error;
  std::shared_ptr<WireConn> c = Connection(&error);
  if (c == nullptr) {
    call->status = error;
    call->done_ = true;
    WireConn::Finish(call, waiter);
    return;
  }
  call->conn_ = c;
  call->tag_ = next_tag_++;
  {
    absl::MutexLock l(&c->mu);
    if (!c->dead) {
      c->pending[call->tag_] = call;
    } else {
      error = absl::UnavailableError(absl::StrFormat("node %s: connection lost", address_));
    }
  }
  if (!error.ok()) {
    WireConn::Complete(call, error);
    return;
  }
  Header h;
  h.method = call->method;
  h.tag = call->tag_;
  h.meta_len = static_cast<uint32_t>(call->meta.size());
  h.data_len = static_cast<uint32_t>(call->data_len);
  char hdr[kHeaderBytes];
  EncodeHeader(h, hdr);
  struct iovec iov[3] = {{hdr, kHeaderBytes},
                         {call->meta.data(), call->meta.size()},
                         {const_cast<char*>(call->data), call->data_len}};
  absl::Status s;
  {
    absl::MutexLock l(&c->send_mu);
    s = c->stream->WriteAll(iov, 3);
  }
  // The reader sees the broken connection and fails every call on it, this one too.
  if (!s.ok()) c->stream->Break();
}

}  // namespace ukai::wire
