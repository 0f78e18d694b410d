// MetaStore: a hierarchical, versioned key-value store with ZooKeeper's
// semantics (znodes, per-node versions, ephemerals, one-shot watches, atomic
// multi-op). The metadata model (meta/catalog.h: disks, the block table,
// jobs) sits on it.
//
// Implementations: NewZkMetaStore (the real one) and NewMemMetaStore (unit
// tests). Both pass meta_store_contract_test.cc.
//
// Thread safety: every method may be called from any thread. Watches fire
// once, on the store's own callback thread, never while the store holds a
// lock; a watch callback must not block for long.
#ifndef UKAI_META_META_STORE_H_
#define UKAI_META_META_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ukai::meta {

using WatchFn = std::function<void()>;

enum class CreateMode { kPersistent, kEphemeral, kSequential };

struct Versioned {
  std::string data;
  int32_t version = 0;
};

// One step of an atomic Multi.
struct Op {
  enum Kind { kCreate, kSet, kDelete, kCheck };
  Kind kind;
  std::string path;
  std::string data;
  int32_t version = -1;  // kSet/kDelete/kCheck: expected version, -1 = any
  CreateMode mode = CreateMode::kPersistent;

  static Op Create(std::string p, std::string d, CreateMode m = CreateMode::kPersistent) {
    return Op{kCreate, std::move(p), std::move(d), -1, m};
  }
  static Op Set(std::string p, std::string d, int32_t v) {
    return Op{kSet, std::move(p), std::move(d), v, CreateMode::kPersistent};
  }
  static Op Delete(std::string p, int32_t v) { return Op{kDelete, std::move(p), "", v}; }
  static Op Check(std::string p, int32_t v) { return Op{kCheck, std::move(p), "", v}; }
};

// Error codes shared by all implementations:
//   NOT_FOUND        the node (or, for Create, its parent) does not exist
//   ALREADY_EXISTS   Create of an existing node
//   ABORTED          version mismatch (a concurrent change won: re-read, retry)
//   FAILED_PRECONDITION  Delete of a node that has children
//   UNAVAILABLE      the store cannot be reached (retry later)
class MetaStore {
 public:
  virtual ~MetaStore() = default;

  // Reads a node. If `watch` is set it fires once when the node changes or is
  // deleted (also set when the read fails with NOT_FOUND: then it fires on create).
  virtual absl::StatusOr<Versioned> Get(const std::string& path, WatchFn watch = nullptr) = 0;
  // Lists child names (not paths), sorted. `watch` fires on a child create/delete.
  virtual absl::StatusOr<std::vector<std::string>> Children(const std::string& path,
                                                            WatchFn watch = nullptr) = 0;
  // Creates a node and returns its path (with the suffix for kSequential).
  virtual absl::StatusOr<std::string> Create(const std::string& path, const std::string& data,
                                             CreateMode mode = CreateMode::kPersistent) = 0;
  // Compare-and-set; returns the new version.
  virtual absl::StatusOr<int32_t> Set(const std::string& path, const std::string& data,
                                      int32_t version) = 0;
  virtual absl::Status Delete(const std::string& path, int32_t version = -1) = 0;
  // All ops or none. The error is that of the first failing op.
  virtual absl::Status Multi(const std::vector<Op>& ops) = 0;

  // Called (on the callback thread) after the session expired and a new one
  // was established: ephemerals of the old session are gone and every
  // pending watch has fired. Owners re-create their ephemerals here.
  virtual void SetSessionListener(std::function<void()> on_new_session) = 0;
};

// Who a ZooKeeper session is, and who may touch what it creates
// (ZooKeeper's digest scheme; security/zk_auth.h reads it from a file).
struct ZkAuth {
  struct Entry {
    std::string id;  // "user:base64(sha1(user:password))"
    int perms = 0;   // ZOO_PERM_* bits
  };
  std::string credential;  // "user:password", added to every session; empty: none
  std::vector<Entry> acl;  // on every znode created; empty: open to anyone
};

// Connects to a ZooKeeper ensemble ("host:port,host:port") as `auth` and
// waits up to `connect_timeout_ms` for a session. UNAVAILABLE if none could
// be had. A znode the session may not touch gives PERMISSION_DENIED.
absl::StatusOr<std::unique_ptr<MetaStore>> NewZkMetaStore(const std::string& hosts,
                                                          const ZkAuth& auth,
                                                          int session_timeout_ms = 10000,
                                                          int connect_timeout_ms = 5000);

// An in-memory tree shared by the sessions made from it.
class MemMetaTree;
std::shared_ptr<MemMetaTree> NewMemMetaTree();
// A new session on `tree`; destroying or expiring it drops its ephemerals.
std::unique_ptr<MetaStore> NewMemMetaStore(std::shared_ptr<MemMetaTree> tree);
// Test hook: expires a MemMetaStore's session (ephemerals removed, watches
// fired, then the session listener runs as after a ZooKeeper re-connect).
void ExpireMemSession(MetaStore* store);
// Test hook: while not reachable, every call on the session fails UNAVAILABLE
// (ZooKeeper out of reach); its watches and ephemerals stay.
void SetMemStoreReachable(MetaStore* store, bool reachable);
// Test hook: watches pending on `path` (data and child watches, all sessions).
size_t CountMemWatches(MemMetaTree& tree, const std::string& path);
// Test hook: returns once every watch callback queued so far has run.
void DrainMemCallbacks(MemMetaTree& tree);

// Creates `path` and any missing parents as empty persistent nodes; OK if it exists.
absl::Status EnsurePath(MetaStore& store, const std::string& path);
// Deletes `path` and everything below it. OK if it does not exist.
absl::Status DeleteRecursive(MetaStore& store, const std::string& path);

}  // namespace ukai::meta

#endif  // UKAI_META_META_STORE_H_
