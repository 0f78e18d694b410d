// MetaStore on the ZooKeeper C client (multi-threaded library, synchronous
// calls). ZooKeeper return codes become absl codes here and nowhere else.
//
// Watches: each watch gets a token; ZooKeeper hands the token back as the
// watcher context. A token's callback runs at most once, on callback_ (never
// on ZooKeeper's completion thread, where a synchronous call would deadlock).
// Session events reach every watcher; only expiry fires them.
//
// Expiry: the handle is replaced by a fresh session (handle_mu_ exclusive),
// all pending watches fire so owners re-read, then the session listener runs.
#define THREADED  // the synchronous API of libzookeeper_mt
#include <zookeeper/zookeeper.h>

#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/callback_thread.h"
#include "meta/meta_store.h"

namespace ukai::meta {
namespace {

absl::Status ZkError(int rc, const std::string& path) {
  std::string msg = absl::StrFormat("%s: %s", path, zerror(rc));
  if (rc == ZNONODE) return absl::NotFoundError(msg);
  if (rc == ZNODEEXISTS) return absl::AlreadyExistsError(msg);
  if (rc == ZBADVERSION) return absl::AbortedError(msg);
  if (rc == ZNOTEMPTY) return absl::FailedPreconditionError(msg);
  if (rc == ZBADARGUMENTS || rc == ZNOCHILDRENFOREPHEMERALS) return absl::InvalidArgumentError(msg);
  if (rc == ZNOAUTH) {
    return absl::PermissionDeniedError(msg +
                                       " (ZooKeeper's ACL: is the credential the cluster's?)");
  }
  if (rc == ZAUTHFAILED) return absl::UnauthenticatedError(msg);
  if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONEXPIRED || rc == ZCLOSING ||
      rc == ZINVALIDSTATE || rc == ZSESSIONMOVED) {
    return absl::UnavailableError("ZooKeeper unavailable: " + msg);
  }
  return absl::InternalError(msg);
}

int Flags(CreateMode m) {
  if (m == CreateMode::kEphemeral) return ZOO_EPHEMERAL;
  if (m == CreateMode::kSequential) return ZOO_SEQUENCE;
  return 0;
}

constexpr int kMaxData = 1 << 20;

class ZkMetaStore : public MetaStore {
 public:
  ZkMetaStore(std::string hosts, ZkAuth auth, int session_ms)
      : hosts_(std::move(hosts)), auth_(std::move(auth)), session_ms_(session_ms) {
    for (const ZkAuth::Entry& e : auth_.acl) {
      acl_entries_.push_back(
          ACL{e.perms, Id{const_cast<char*>("digest"), const_cast<char*>(e.id.c_str())}});
    }
    acl_ = ACL_vector{static_cast<int32_t>(acl_entries_.size()), acl_entries_.data()};
  }

  ~ZkMetaStore() override {
    absl::MutexLock l(&handle_mu_);
    if (zh_) zookeeper_close(zh_);
    zh_ = nullptr;
  }

  absl::Status Connect(int timeout_ms) {
    absl::MutexLock l(&handle_mu_);
    return ConnectLocked(timeout_ms);
  }

  absl::StatusOr<Versioned> Get(const std::string& path, WatchFn watch) override {
    thread_local std::vector<char> buf(kMaxData);
    absl::ReaderMutexLock l(&handle_mu_);
    if (zh_ == nullptr) return absl::UnavailableError("ZooKeeper session closed");
    for (int attempt = 0; attempt < 3; ++attempt) {
      int len = kMaxData;
      struct Stat st;
      uint64_t token = watch ? AddWatch(watch) : 0;
      int rc = zoo_wget(zh_, path.c_str(), watch ? &ZkMetaStore::OnWatch : nullptr, Ctx(token),
                        buf.data(), &len, &st);
      if (rc == ZOK) return Versioned{std::string(buf.data(), len < 0 ? 0 : len), st.version};
      DropWatch(token);
      if (rc != ZNONODE || !watch) return ZkError(rc, path);
      // Watch for the node's creation; if it appeared meanwhile, read again.
      token = AddWatch(watch);
      rc = zoo_wexists(zh_, path.c_str(), &ZkMetaStore::OnWatch, Ctx(token), &st);
      if (rc == ZNONODE) return ZkError(ZNONODE, path);
      if (rc != ZOK) {
        DropWatch(token);
        return ZkError(rc, path);
      }
      DropWatch(token);
    }
    return absl::AbortedError(path + ": changing too fast");
  }

  absl::StatusOr<std::vector<std::string>> Children(const std::string& path,
                                                    WatchFn watch) override {
    absl::ReaderMutexLock l(&handle_mu_);
    if (zh_ == nullptr) return absl::UnavailableError("ZooKeeper session closed");
    struct String_vector sv = {0, nullptr};
    uint64_t token = watch ? AddWatch(watch) : 0;
    int rc = zoo_wget_children(zh_, path.c_str(), watch ? &ZkMetaStore::OnWatch : nullptr,
                               Ctx(token), &sv);
    if (rc != ZOK) {
      DropWatch(token);
      return ZkError(rc, path);
    }
    std::vector<std::string> out(sv.data, sv.data + sv.count);
    deallocate_String_vector(&sv);
    std::sort(out.begin(), out.end());
    return out;
  }

  absl::StatusOr<std::string> Create(const std::string& path, const std::string& data,
                                     CreateMode mode) override {
    absl::ReaderMutexLock l(&handle_mu_);
    if (zh_ == nullptr) return absl::UnavailableError("ZooKeeper session closed");
    std::vector<char> created(path.size() + 64);
    int rc = zoo_create(zh_, path.c_str(), data.data(), static_cast<int>(data.size()), Acl(),
                        Flags(mode), created.data(), static_cast<int>(created.size()));
    if (rc != ZOK) return ZkError(rc, path);
    return std::string(created.data());
  }

  absl::StatusOr<int32_t> Set(const std::string& path, const std::string& data,
                              int32_t version) override {
    absl::ReaderMutexLock l(&handle_mu_);
    if (zh_ == nullptr) return absl::UnavailableError("ZooKeeper session closed");
    struct Stat st;
    int rc = zoo_set2(zh_, path.c_str(), data.data(), static_cast<int>(data.size()), version, &st);
    if (rc != ZOK) return ZkError(rc, path);
    return st.version;
  }

  absl::Status Delete(const std::string& path, int32_t version) override {
    absl::ReaderMutexLock l(&handle_mu_);
    if (zh_ == nullptr) return absl::UnavailableError("ZooKeeper session closed");
    int rc = zoo_delete(zh_, path.c_str(), version);
    return rc == ZOK ? absl::OkStatus() : ZkError(rc, path);
  }

  absl::Status Multi(const std::vector<Op>& ops) override {
    if (ops.empty()) return absl::OkStatus();
    absl::ReaderMutexLock l(&handle_mu_);
    if (zh_ == nullptr) return absl::UnavailableError("ZooKeeper session closed");
    std::vector<zoo_op_t> zops(ops.size());
    std::vector<zoo_op_result_t> results(ops.size());
    std::vector<std::vector<char>> bufs(ops.size());
    std::vector<struct Stat> stats(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      const Op& op = ops[i];
      switch (op.kind) {
        case Op::kCreate:
          bufs[i].resize(op.path.size() + 64);
          zoo_create_op_init(&zops[i], op.path.c_str(), op.data.data(),
                             static_cast<int>(op.data.size()), Acl(), Flags(op.mode),
                             bufs[i].data(), static_cast<int>(bufs[i].size()));
          break;
        case Op::kSet:
          zoo_set_op_init(&zops[i], op.path.c_str(), op.data.data(),
                          static_cast<int>(op.data.size()), op.version, &stats[i]);
          break;
        case Op::kDelete:
          zoo_delete_op_init(&zops[i], op.path.c_str(), op.version);
          break;
        case Op::kCheck:
          zoo_check_op_init(&zops[i], op.path.c_str(), op.version);
          break;
      }
    }
    int rc = zoo_multi(zh_, static_cast<int>(ops.size()), zops.data(), results.data());
    if (rc == ZOK) return absl::OkStatus();
    for (size_t i = 0; i < ops.size(); ++i) {
      if (results[i].err != ZOK && results[i].err != ZRUNTIMEINCONSISTENCY) {
        return ZkError(results[i].err, ops[i].path);
      }
    }
    return ZkError(rc, ops[0].path);
  }

  void SetSessionListener(std::function<void()> fn) override {
    absl::MutexLock l(&watch_mu_);
    listener_ = std::move(fn);
  }

 private:
  // What every znode this session creates carries.
  const ACL_vector* Acl() const { return acl_entries_.empty() ? &ZOO_OPEN_ACL_UNSAFE : &acl_; }

  // Adds the credential to a new session; ZooKeeper answers it before any
  // later request of the session.
  absl::Status Authenticate(int timeout_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(handle_mu_) {
    if (auth_.credential.empty()) return absl::OkStatus();
    struct Done {
      absl::Mutex mu;
      bool done ABSL_GUARDED_BY(mu) = false;
      int rc ABSL_GUARDED_BY(mu) = 0;
    };
    auto done = std::make_shared<Done>();
    // The completion owns one reference: it may run after a timed-out wait.
    auto* ref = new std::shared_ptr<Done>(done);
    auto completion = [](int rc, const void* data) {
      auto* ref = static_cast<std::shared_ptr<Done>*>(const_cast<void*>(data));
      {
        absl::MutexLock l(&(*ref)->mu);
        (*ref)->rc = rc;
        (*ref)->done = true;
      }
      delete ref;
    };
    int rc = zoo_add_auth(zh_, "digest", auth_.credential.data(),
                          static_cast<int>(auth_.credential.size()), completion, ref);
    if (rc != ZOK) {
      delete ref;
      return ZkError(rc, "authentication");
    }
    absl::MutexLock l(&done->mu);
    if (!done->mu.AwaitWithTimeout(absl::Condition(&done->done), absl::Milliseconds(timeout_ms))) {
      return absl::UnavailableError("ZooKeeper at " + hosts_ + " did not answer authentication");
    }
    return done->rc == ZOK ? absl::OkStatus() : ZkError(done->rc, "authentication");
  }

  static void* Ctx(uint64_t token) {
    return reinterpret_cast<void*>(static_cast<uintptr_t>(token));
  }

  uint64_t AddWatch(WatchFn fn) {
    absl::MutexLock l(&watch_mu_);
    uint64_t t = next_token_++;
    watches_[t] = std::move(fn);
    return t;
  }
  void DropWatch(uint64_t token) {
    if (token == 0) return;
    absl::MutexLock l(&watch_mu_);
    watches_.erase(token);
  }

  // Runs on ZooKeeper's completion thread: no blocking, no ZooKeeper calls.
  static void OnWatch(zhandle_t* zh, int type, int state, const char* path, void* ctx) {
    auto* self = static_cast<ZkMetaStore*>(const_cast<void*>(zoo_get_context(zh)));
    if (self == nullptr || type == ZOO_SESSION_EVENT) return;  // expiry handled globally
    self->FireToken(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ctx)));
  }
  void FireToken(uint64_t token) {
    WatchFn fn;
    {
      absl::MutexLock l(&watch_mu_);
      auto it = watches_.find(token);
      if (it == watches_.end()) return;
      fn = std::move(it->second);
      watches_.erase(it);
    }
    callback_.Post(std::move(fn));
  }

  // The session watcher, on ZooKeeper's completion thread.
  static void OnSession(zhandle_t* zh, int type, int state, const char* path, void* ctx) {
    auto* self = static_cast<ZkMetaStore*>(const_cast<void*>(zoo_get_context(zh)));
    if (self == nullptr || type != ZOO_SESSION_EVENT) return;
    if (state == ZOO_CONNECTED_STATE) {
      absl::MutexLock l(&self->state_mu_);
      self->connected_ = true;
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      LOG_WARN("ZooKeeper session expired; starting a new one");
      self->callback_.Post([self] { self->Renew(); });
    }
  }

  absl::Status ConnectLocked(int timeout_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(handle_mu_) {
    {
      absl::MutexLock l(&state_mu_);
      connected_ = false;
    }
    zh_ = zookeeper_init(hosts_.c_str(), &ZkMetaStore::OnSession, session_ms_, nullptr, this, 0);
    if (zh_ == nullptr) {
      return absl::InvalidArgumentError("bad ZooKeeper address '" + hosts_ + "'");
    }
    bool ok;
    {
      absl::MutexLock l(&state_mu_);
      auto connected = [this]() ABSL_SHARED_LOCKS_REQUIRED(state_mu_) { return connected_; };
      ok = state_mu_.AwaitWithTimeout(absl::Condition(&connected), absl::Milliseconds(timeout_ms));
    }
    absl::Status s = ok ? Authenticate(timeout_ms)
                        : absl::UnavailableError("ZooKeeper at " + hosts_ + " unreachable");
    if (!s.ok()) {
      zookeeper_close(zh_);
      zh_ = nullptr;
    }
    return s;
  }

  // On callback_: replace the handle, fire every pending watch, tell the owner.
  void Renew() {
    while (true) {
      absl::MutexLock l(&handle_mu_);
      if (zh_) zookeeper_close(zh_);
      zh_ = nullptr;
      if (ConnectLocked(session_ms_).ok()) break;
      LOG_WARN("ZooKeeper at %s still unreachable; retrying", hosts_);
    }
    std::map<uint64_t, WatchFn> pending;
    std::function<void()> listener;
    {
      absl::MutexLock l(&watch_mu_);
      pending.swap(watches_);
      listener = listener_;
    }
    for (auto& [t, fn] : pending) fn();
    if (listener) listener();
  }

  const std::string hosts_;
  const ZkAuth auth_;
  std::vector<ACL> acl_entries_;  // point into auth_
  ACL_vector acl_;
  const int session_ms_;
  // Lock order: handle_mu_ before watch_mu_ and state_mu_.
  absl::Mutex handle_mu_;  // shared by calls, exclusive while the handle is replaced
  zhandle_t* zh_ ABSL_GUARDED_BY(handle_mu_) = nullptr;
  absl::Mutex watch_mu_;
  std::map<uint64_t, WatchFn> watches_ ABSL_GUARDED_BY(watch_mu_);
  uint64_t next_token_ ABSL_GUARDED_BY(watch_mu_) = 1;
  std::function<void()> listener_ ABSL_GUARDED_BY(watch_mu_);
  absl::Mutex state_mu_;
  bool connected_ ABSL_GUARDED_BY(state_mu_) = false;
  CallbackThread callback_;  // destroyed first: no callback outlives the fields
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetaStore>> NewZkMetaStore(const std::string& hosts,
                                                          const ZkAuth& auth,
                                                          int session_timeout_ms,
                                                          int connect_timeout_ms) {
  static bool quiet = [] {
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    return true;
  }();
  (void)quiet;
  auto store = std::make_unique<ZkMetaStore>(hosts, auth, session_timeout_ms);
  RETURN_IF_ERROR(store->Connect(connect_timeout_ms));
  return std::unique_ptr<MetaStore>(std::move(store));
}

}  // namespace ukai::meta
