// In-memory MetaStore with ZooKeeper's semantics, for unit tests.
#include <atomic>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "meta/callback_thread.h"
#include "meta/meta_store.h"

namespace ukai::meta {

class MemMetaTree {
 public:
  struct Node {
    std::string data;
    int32_t version = 0;
    uint64_t owner = 0;  // session of an ephemeral, 0 = persistent
    int32_t next_seq = 0;
  };
  struct Watch {
    uint64_t session;
    WatchFn fn;
  };

  MemMetaTree() { nodes_["/"] = Node{}; }

  absl::Mutex mu;
  std::map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu);
  std::multimap<std::string, Watch> data_watches_ ABSL_GUARDED_BY(mu);
  std::multimap<std::string, Watch> child_watches_ ABSL_GUARDED_BY(mu);
  uint64_t next_session_ ABSL_GUARDED_BY(mu) = 1;
  CallbackThread callbacks;

  static std::string Parent(const std::string& path) {
    size_t i = path.rfind('/');
    return i == 0 ? "/" : path.substr(0, i);
  }
  bool HasChildren(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::string prefix = path == "/" ? "/" : path + "/";
    auto it = nodes_.upper_bound(prefix);
    if (path == "/") it = nodes_.upper_bound("/");
    return it != nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
  }
  // Moves the watches of `key` in `m` to `out`.
  static void Take(std::multimap<std::string, Watch>& m, const std::string& key,
                   std::vector<WatchFn>& out) {
    auto [b, e] = m.equal_range(key);
    for (auto it = b; it != e; ++it) out.push_back(std::move(it->second.fn));
    m.erase(b, e);
  }
  void Fire(std::vector<WatchFn> fns) {
    for (auto& f : fns) callbacks.Post(std::move(f));
  }
};

std::shared_ptr<MemMetaTree> NewMemMetaTree() { return std::make_shared<MemMetaTree>(); }

namespace {

absl::Status CheckPath(const std::string& path) {
  if (path.empty() || path[0] != '/' || (path.size() > 1 && path.back() == '/') ||
      path.find("//") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrFormat("bad path '%s'", path));
  }
  return absl::OkStatus();
}

class MemMetaStore : public MetaStore {
 public:
  explicit MemMetaStore(std::shared_ptr<MemMetaTree> tree) : tree_(std::move(tree)) {
    absl::MutexLock l(&tree_->mu);
    session_ = tree_->next_session_++;
  }
  ~MemMetaStore() override {
    std::vector<WatchFn> fire;
    absl::MutexLock l(&tree_->mu);
    DropEphemerals(fire);
    auto drop = [&](std::multimap<std::string, MemMetaTree::Watch>& m) {
      for (auto it = m.begin(); it != m.end();) {
        it = it->second.session == session_ ? m.erase(it) : std::next(it);
      }
    };
    drop(tree_->data_watches_);
    drop(tree_->child_watches_);
    tree_->Fire(std::move(fire));
  }

  // While set, every call fails as with ZooKeeper out of reach.
  std::atomic<bool> unreachable{false};
  absl::Status Reach() const {
    if (!unreachable) return absl::OkStatus();
    return absl::UnavailableError("ZooKeeper unavailable: connection loss (test)");
  }

  absl::StatusOr<Versioned> Get(const std::string& path, WatchFn watch) override {
    RETURN_IF_ERROR(Reach());
    RETURN_IF_ERROR(CheckPath(path));
    absl::MutexLock l(&tree_->mu);
    if (watch) tree_->data_watches_.emplace(path, MemMetaTree::Watch{session_, std::move(watch)});
    auto it = tree_->nodes_.find(path);
    if (it == tree_->nodes_.end()) return absl::NotFoundError(path + ": no such node");
    return Versioned{it->second.data, it->second.version};
  }

  absl::StatusOr<std::vector<std::string>> Children(const std::string& path,
                                                    WatchFn watch) override {
    RETURN_IF_ERROR(Reach());
    RETURN_IF_ERROR(CheckPath(path));
    absl::MutexLock l(&tree_->mu);
    if (!tree_->nodes_.count(path)) return absl::NotFoundError(path + ": no such node");
    if (watch) tree_->child_watches_.emplace(path, MemMetaTree::Watch{session_, std::move(watch)});
    std::string prefix = path == "/" ? "/" : path + "/";
    std::vector<std::string> out;
    for (auto it = tree_->nodes_.upper_bound(prefix);
         it != tree_->nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      std::string rest = it->first.substr(prefix.size());
      if (!rest.empty() && rest.find('/') == std::string::npos) out.push_back(rest);
    }
    return out;
  }

  absl::StatusOr<std::string> Create(const std::string& path, const std::string& data,
                                     CreateMode mode) override {
    RETURN_IF_ERROR(Reach());
    std::vector<WatchFn> fire;
    absl::StatusOr<std::string> r;
    {
      absl::MutexLock l(&tree_->mu);
      r = CreateLocked(path, data, mode, fire);
    }
    tree_->Fire(std::move(fire));
    return r;
  }

  absl::StatusOr<int32_t> Set(const std::string& path, const std::string& data,
                              int32_t version) override {
    RETURN_IF_ERROR(Reach());
    std::vector<WatchFn> fire;
    absl::StatusOr<int32_t> r;
    {
      absl::MutexLock l(&tree_->mu);
      r = SetLocked(path, data, version, fire);
    }
    tree_->Fire(std::move(fire));
    return r;
  }

  absl::Status Delete(const std::string& path, int32_t version) override {
    RETURN_IF_ERROR(Reach());
    std::vector<WatchFn> fire;
    absl::Status s;
    {
      absl::MutexLock l(&tree_->mu);
      s = DeleteLocked(path, version, fire);
    }
    tree_->Fire(std::move(fire));
    return s;
  }

  absl::Status Multi(const std::vector<Op>& ops) override {
    RETURN_IF_ERROR(Reach());
    std::vector<WatchFn> fire;
    absl::Status s;
    {
      absl::MutexLock l(&tree_->mu);
      auto saved_nodes = tree_->nodes_;
      auto saved_data = tree_->data_watches_;
      auto saved_child = tree_->child_watches_;
      for (const Op& op : ops) {
        switch (op.kind) {
          case Op::kCreate:
            s = CreateLocked(op.path, op.data, op.mode, fire).status();
            break;
          case Op::kSet:
            s = SetLocked(op.path, op.data, op.version, fire).status();
            break;
          case Op::kDelete:
            s = DeleteLocked(op.path, op.version, fire);
            break;
          case Op::kCheck:
            s = CheckLocked(op.path, op.version);
            break;
        }
        if (!s.ok()) break;
      }
      if (!s.ok()) {  // roll back: nothing happened, nothing fires
        tree_->nodes_ = std::move(saved_nodes);
        tree_->data_watches_ = std::move(saved_data);
        tree_->child_watches_ = std::move(saved_child);
        fire.clear();
      }
    }
    tree_->Fire(std::move(fire));
    return s;
  }

  void SetSessionListener(std::function<void()> fn) override {
    absl::MutexLock l(&tree_->mu);
    listener_ = std::move(fn);
  }

  void Expire() {
    std::vector<WatchFn> fire;
    std::function<void()> listener;
    {
      absl::MutexLock l(&tree_->mu);
      DropEphemerals(fire);
      // As with ZooKeeper, an expired session's watches all fire.
      for (auto* m : {&tree_->data_watches_, &tree_->child_watches_}) {
        for (auto it = m->begin(); it != m->end();) {
          if (it->second.session == session_) {
            fire.push_back(std::move(it->second.fn));
            it = m->erase(it);
          } else {
            ++it;
          }
        }
      }
      session_ = tree_->next_session_++;
      listener = listener_;
    }
    tree_->Fire(std::move(fire));
    if (listener) tree_->callbacks.Post(listener);
  }

 private:
  absl::StatusOr<std::string> CreateLocked(const std::string& path, const std::string& data,
                                           CreateMode mode, std::vector<WatchFn>& fire)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_->mu) {
    RETURN_IF_ERROR(CheckPath(path));
    if (path == "/") return absl::AlreadyExistsError("/: exists");
    std::string parent = MemMetaTree::Parent(path);
    auto pit = tree_->nodes_.find(parent);
    if (pit == tree_->nodes_.end()) return absl::NotFoundError(parent + ": no such node");
    if (pit->second.owner != 0) {
      return absl::InvalidArgumentError(parent + ": ephemerals cannot have children");
    }
    std::string real = path;
    if (mode == CreateMode::kSequential) {
      real += absl::StrFormat("%010d", pit->second.next_seq);
    }
    if (tree_->nodes_.count(real)) return absl::AlreadyExistsError(real + ": exists");
    pit->second.next_seq++;
    MemMetaTree::Node n;
    n.data = data;
    n.owner = mode == CreateMode::kEphemeral ? session_ : 0;
    tree_->nodes_[real] = std::move(n);
    MemMetaTree::Take(tree_->data_watches_, real, fire);
    MemMetaTree::Take(tree_->child_watches_, parent, fire);
    return real;
  }

  absl::StatusOr<int32_t> SetLocked(const std::string& path, const std::string& data,
                                    int32_t version, std::vector<WatchFn>& fire)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_->mu) {
    RETURN_IF_ERROR(CheckLocked(path, version));
    auto& n = tree_->nodes_[path];
    n.data = data;
    n.version++;
    MemMetaTree::Take(tree_->data_watches_, path, fire);
    return n.version;
  }

  absl::Status DeleteLocked(const std::string& path, int32_t version, std::vector<WatchFn>& fire)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_->mu) {
    RETURN_IF_ERROR(CheckLocked(path, version));
    if (path == "/") return absl::InvalidArgumentError("cannot delete /");
    if (tree_->HasChildren(path)) return absl::FailedPreconditionError(path + ": has children");
    tree_->nodes_.erase(path);
    MemMetaTree::Take(tree_->data_watches_, path, fire);
    MemMetaTree::Take(tree_->child_watches_, path, fire);
    MemMetaTree::Take(tree_->child_watches_, MemMetaTree::Parent(path), fire);
    return absl::OkStatus();
  }

  absl::Status CheckLocked(const std::string& path, int32_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_->mu) {
    RETURN_IF_ERROR(CheckPath(path));
    auto it = tree_->nodes_.find(path);
    if (it == tree_->nodes_.end()) return absl::NotFoundError(path + ": no such node");
    if (version != -1 && it->second.version != version) {
      return absl::AbortedError(
          absl::StrFormat("%s: version %d, expected %d", path, it->second.version, version));
    }
    return absl::OkStatus();
  }

  void DropEphemerals(std::vector<WatchFn>& fire) ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_->mu) {
    for (auto it = tree_->nodes_.begin(); it != tree_->nodes_.end();) {
      if (it->second.owner == session_) {
        std::string path = it->first;
        it = tree_->nodes_.erase(it);
        MemMetaTree::Take(tree_->data_watches_, path, fire);
        MemMetaTree::Take(tree_->child_watches_, MemMetaTree::Parent(path), fire);
      } else {
        ++it;
      }
    }
  }

  std::shared_ptr<MemMetaTree> tree_;
  uint64_t session_;
  std::function<void()> listener_;
};

}  // namespace

std::unique_ptr<MetaStore> NewMemMetaStore(std::shared_ptr<MemMetaTree> tree) {
  return std::make_unique<MemMetaStore>(std::move(tree));
}

void ExpireMemSession(MetaStore* store) { static_cast<MemMetaStore*>(store)->Expire(); }
void SetMemStoreReachable(MetaStore* store, bool reachable) {
  static_cast<MemMetaStore*>(store)->unreachable = !reachable;
}

void DrainMemCallbacks(MemMetaTree& tree) { tree.callbacks.Drain(); }

size_t CountMemWatches(MemMetaTree& tree, const std::string& path) {
  absl::MutexLock l(&tree.mu);
  return tree.data_watches_.count(path) + tree.child_watches_.count(path);
}

}  // namespace ukai::meta
