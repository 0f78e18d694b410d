// libukai: the volume library every host links (FUSE frontend, ukaictl's
// backup/import/export, a future QEMU driver). A Cluster is a process's
// connection to one UKAI cluster; a Volume is an open disk with byte-offset
// read/write/flush.
//
// Guarantees (docs/PROTOCOL.md): every data request carries the disk's layout
// version and, for writes, this host's writer epoch; a rejected request
// re-reads metadata and retries. A write returns OK once every non-stale
// replica took it, or once the failed ones are marked STALE in ZooKeeper. A
// write is durable once a later Flush returned OK. No data is cached.
//
// Thread safety: Cluster and Volume are thread-safe; one Volume may serve
// many concurrent requests.
#ifndef UKAI_CLIENT_CLUSTER_H_
#define UKAI_CLIENT_CLUSTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ukai::client {

struct ClusterOptions {
  std::string zk = "127.0.0.1:2181";
  std::string root = "/ukai";
  std::string host;           // unique name of this host/process; default hostname:pid
  std::string site;           // this host's site: reads prefer replicas there
  int rpc_timeout_ms = 5000;  // per data RPC
  int zk_session_ms = 10000;
  // TLS credentials: a directory with ca.pem, cert.pem and key.pem, as
  // `ukaictl cert issue` writes them (docs/SECURITY.md). Required unless
  // insecure_plaintext, which is for benchmarks only and logs a warning.
  std::string tls_dir;
  bool insecure_plaintext = false;
  std::string program = "libukai";  // names the process in that warning
  // Where this host's nodes keep their same-host block I/O sockets (their
  // --run-dir): a node on this host is reached through it instead of TCP.
  // Empty: TCP only.
  std::string run_dir = "/run/ukai";
  // Who this process is, as its certificate names it ("frontend hv7"):
  // recorded as the writer of the disks it writes, nodes admit those writes
  // from it only. Cluster::Connect sets it from tls_dir (empty when
  // plaintext); a value given here is replaced.
  std::string identity;
};

struct DiskAttr {
  uint64_t id = 0;
  std::string name;
  uint64_t size = 0;
  uint32_t block_size = 0;
  uint64_t created_ms = 0;
  bool snapshot = false;    // a read-only view of a snapshot (name is DISK@SNAPSHOT)
  uint64_t generation = 0;  // the snapshot's
};

class Volume {
 public:
  virtual ~Volume() = default;
  virtual DiskAttr attr() const = 0;
  // The current size, cheaply (the I/O path asks on every request).
  virtual uint64_t size() const = 0;
  // [offset, offset+len) must lie inside the disk (OUT_OF_RANGE otherwise).
  // Errors: UNAVAILABLE (no replica answered), PERMISSION_DENIED (this host's
  // writer epoch was fenced by another host), NOT_FOUND (disk deleted),
  // FAILED_PRECONDITION (write on a read-only volume).
  virtual absl::Status Read(uint64_t offset, size_t len, char* out) = 0;
  // Read without a waiting thread: `done` gets what Read would return,
  // exactly once, on a libukai thread (or on the caller's, for answers known
  // at once). It must not block for long. Keep this Volume and `out` alive
  // until it runs.
  using Done = std::function<void(absl::Status)>;
  virtual void ReadAsync(uint64_t offset, size_t len, char* out, Done done) = 0;
  // Write without a waiting thread, as ReadAsync. `data` is only read before
  // WriteAsync returns, so the caller may reuse it at once.
  virtual void WriteAsync(uint64_t offset, const char* data, size_t len, Done done) = 0;
  virtual absl::Status Write(uint64_t offset, const char* data, size_t len) = 0;
  // Makes every write acknowledged before the call durable on its replicas.
  virtual absl::Status Flush() = 0;

  // For copying a disk out (backup, export): the blocks that may hold data
  // in this view (any other block reads as zeros), ascending. From the block
  // table alone: no data is read.
  virtual absl::StatusOr<std::vector<uint64_t>> DataBlocks() = 0;
  // The blocks that may differ between snapshot `since` of the same disk and
  // this view (a later snapshot, or the disk itself), ascending.
  // INVALID_ARGUMENT if `since` is not older than this view.
  virtual absl::StatusOr<std::vector<uint64_t>> ChangedBlocks(const std::string& since) = 0;
};

class Cluster {
 public:
  virtual ~Cluster() = default;
  // Connects to ZooKeeper and learns the nodes. UNAVAILABLE if unreachable.
  static absl::StatusOr<std::unique_ptr<Cluster>> Connect(const ClusterOptions& opts);

  virtual const ClusterOptions& options() const = 0;
  // Disk names, sorted.
  virtual absl::StatusOr<std::vector<std::string>> ListDisks() = 0;
  // The snapshot names of a disk, oldest first.
  virtual absl::StatusOr<std::vector<std::string>> ListSnapshots(const std::string& disk) = 0;
  // `name`: a disk, or DISK@SNAPSHOT.
  virtual absl::StatusOr<DiskAttr> Stat(const std::string& name) = 0;
  // Calls `fn` (on a background thread, without locks held) whenever the set
  // of disks or an open volume's size may have changed. One listener.
  virtual void OnChange(std::function<void()> fn) = 0;
  // Opens a disk, or (DISK@SNAPSHOT) a read-only view of one of its
  // snapshots. A writable open registers this host as having the disk open
  // for writing (so it cannot be deleted without --force) until the last
  // writable Volume of the disk in this Cluster is destroyed.
  virtual absl::StatusOr<std::shared_ptr<Volume>> Open(const std::string& name, bool writable) = 0;
};

}  // namespace ukai::client

#endif  // UKAI_CLIENT_CLUSTER_H_
