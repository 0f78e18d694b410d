// VolumeImpl (internal): one open disk shared by every handle of a Cluster.
// Caches the disk's spec and block-table chunks, each tagged with the layout
// version it was read under; nodes reject requests from an older layout and
// the volume then re-reads. Block pointers that say "not allocated" are only
// cached while this host holds the writer epoch (no other host can allocate
// then without fencing us first), or in a snapshot's view.
//
// A volume is the disk as it is now, or (`snapshot` set) a read-only view of
// one of its snapshots. A clone's volume reads the blocks it has no data of
// through a view of its parent's snapshot (parent_), and gives a block its
// own object on the first write; a write to a block a snapshot still reads
// copies it on the nodes first (docs/ARCHITECTURE.md, "Snapshots and clones").
//
// Lock order: cow_mu_, then writer_mu_, then mu_; switch_mu_ alone. None is
// held across an RPC or a ZooKeeper call (cow_mu_ and switch_mu_ only guard
// what is busy and queued).
#ifndef UKAI_CLIENT_VOLUME_IMPL_H_
#define UKAI_CLIENT_VOLUME_IMPL_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/include/ukai/cluster.h"
#include "client/node_pool.h"
#include "common/executor.h"
#include "common/lifetime.h"
#include "common/wire_client.h"
#include "meta/catalog.h"
#include "meta/generations.h"

namespace ukai::client {

// Counts asynchronous operations in flight, so their owner can wait for none.
class OpCounter {
 public:
  void Add() {
    absl::MutexLock l(&mu_);
    ++n_;
  }
  void Done() {
    absl::MutexLock l(&mu_);
    --n_;
  }
  void WaitIdle() {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &n_));
  }

 private:
  absl::Mutex mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};

// What a cluster's volumes share for their asynchronous I/O: the count of
// calls in flight (waited for before the cluster goes), and the bounded pool
// that runs the I/O the fast path handed off (a replica down, a stale
// layout), so a node outage costs a fixed number of threads.
struct AsyncIo {
  static constexpr size_t kSlowPathThreads = 128;  // the kernel's FUSE queue depth
  static constexpr size_t kSlowPathQueue = 16384;
  OpCounter ops;
  Executor slow_path{"ukai-slowpath", kSlowPathThreads, kSlowPathQueue};  // goes before ops
};

class VolumeImpl {
 public:
  using Done = std::function<void(absl::Status)>;

  // `async` counts ReadAsync and WriteAsync calls in flight and runs their
  // slow path; it outlives the volume's owner.
  // `snapshot`: empty for the disk itself, else the snapshot to view.
  VolumeImpl(meta::Catalog* catalog, NodePool* pool, const ClusterOptions* opts, uint64_t id,
             std::function<void()> on_change, AsyncIo* async, std::string snapshot = "");
  ~VolumeImpl();

  absl::Status Init();  // reads the spec and watches it; NOT_FOUND for a missing snapshot
  bool read_only() const { return !snapshot_.empty(); }
  DiskAttr attr() const;
  uint64_t size() const;
  absl::Status Read(uint64_t offset, size_t len, char* out);
  // Read, answered through `done`: on the transport's thread when the nearest
  // replica answers at once (no thread waits), otherwise from the slow-path
  // pool (OffFastPath) that runs Read's retries. The caller keeps the volume
  // and `out` alive until then.
  void ReadAsync(uint64_t offset, size_t len, char* out, Done done);
  // Write, answered through `done` as ReadAsync. `data` is only read before
  // WriteAsync returns (small writes are copied, large ones run inline).
  void WriteAsync(uint64_t offset, const char* data, size_t len, Done done);
  absl::Status Write(uint64_t offset, const char* data, size_t len);
  absl::Status Flush();
  // Volume::DataBlocks and ChangedBlocks.
  absl::StatusOr<std::vector<uint64_t>> DataBlocks();
  absl::StatusOr<std::vector<uint64_t>> ChangedBlocks(const std::string& since);
  // Called when the last writable handle closes: the next write takes a new
  // epoch (a host that closed and reopened may write again after another
  // host wrote in between).
  void ReleaseWriter();

 private:
  // A block's pointer as of `layout_version`: a view into the cached chunk
  // (shared, never copied on the I/O path). No chunk: not allocated.
  struct BlockRef {
    uint64_t layout_version = 0;
    std::shared_ptr<const pb::BlockChunk> chunk;
    uint32_t index = 0;
    bool allocated() const { return chunk != nullptr; }
    const pb::BlockPtr& ptr() const { return chunk->blocks(index); }
  };
  absl::StatusOr<BlockRef> GetBlock(uint64_t block, bool allocate);
  // The spec, the generation viewed and the view's size, as of now.
  void ViewNow(pb::DiskSpec* spec, uint64_t* view, uint64_t* size) const;
  // What the block reads as in this volume's view (meta/generations.h).
  meta::BlockView ViewOf(const BlockRef& ref) const;
  // The view of the parent's snapshot a clone reads through to (opened on
  // first use). FAILED_PRECONDITION if the disk has no parent (any more).
  absl::StatusOr<std::shared_ptr<VolumeImpl>> Parent();
  // Reads [off, off+len) of `block` from the parent's snapshot (zeros past its end).
  absl::Status ReadParent(uint64_t block, uint32_t off, uint32_t len, char* out);
  // Gives `block` an object of its own at the disk's generation before a
  // write: a copy on the nodes of the object a snapshot keeps, or, for a
  // clone's block, the parent's data with this write merged in, written
  // whole (then `*written` is set: nothing is left to write). `partial`: the
  // replicas that took this write under the old object before a snapshot
  // turned the rest away (marked stale first: the snapshot's object must
  // read the same on every replica).
  absl::Status GiveOwnObject(uint64_t block, uint32_t off, const char* data, uint32_t len,
                             uint64_t epoch, const std::vector<std::string>& partial,
                             bool* written);
  // What GiveOwnObject's step 1 (the new object on each CLEAN replica) got.
  struct CowCopy {
    std::vector<std::string> ok, failed;  // replicas that made it, or failed
    absl::Status last;                    // the last failure
    bool stale_layout = false;            // a node turned it away: catch up, again
  };
  // Step 1 on `targets`; an error the caller returns as it is (fenced, a
  // bad request, the disk gone).
  absl::Status MakeOwnObject(const BlockRef& ref, const pb::DiskSpec& spec, uint64_t block,
                             uint32_t off, const char* data, uint32_t len, uint64_t epoch,
                             const std::vector<std::string>& targets, CowCopy* out);
  // The replicas that took a write into the object a snapshot now keeps,
  // while the others turned it away, go stale: true if it marked any.
  absl::StatusOr<bool> MarkPartial(uint64_t block, const BlockRef& ref,
                                   const std::vector<std::string>& partial);
  // One block's pointer switch to its new object (GiveOwnObject's step 2).
  struct Switch {
    uint64_t block;
    bool inherited;
    uint64_t from, gen;
    std::vector<std::string> targets;  // the CLEAN replicas asked to make it
    std::vector<std::string> ok;       // and those that did
    bool switched = false, raced = false, done = false;
    absl::Status status;
  };
  // Applies `mine`, with every switch of the same chunk queued meanwhile, in
  // one compare-and-set; the status is the compare-and-set's.
  absl::Status SwitchPointers(uint64_t chunk, Switch* mine);
  // After this host's own change of chunk `c` (`spec` is the disk's spec
  // that change left, `chunk` the chunk as written): takes both into the
  // cache without dropping the other chunks, if nothing else can have
  // changed between the cached layout and that one; else re-reads the spec.
  absl::Status AdoptOwnChange(const pb::DiskSpec& spec, bool changed, uint64_t c,
                              pb::BlockChunk chunk);
  absl::Status RefreshLayout(bool arm_watch);
  // A node turned away a request sent under layout `sent`: re-reads the
  // spec, unless the cache already holds a newer layout (our own switch).
  absl::Status CatchUp(uint64_t sent);
  // Checks the range against the disk; returns its block size.
  absl::StatusOr<uint32_t> CheckRange(uint64_t offset, size_t len) const;
  absl::StatusOr<uint64_t> WriterEpoch();
  // Reads from the nearest clean replica that answers; with the WAIT policy,
  // holds (retrying) while none does, up to the policy's hold time. A layout
  // that keeps moving is waited out the same way, whatever the policy.
  // Runs task(OK) on the cluster's slow-path pool; if that is full, runs
  // task(UNAVAILABLE) here at once, which must then only answer. The task
  // lets go of what it holds (a `done` may hold the volume's last reference)
  // before it counts its operation finished.
  void OffFastPath(std::function<void(const absl::Status&)> task);
  absl::Status ReadSegment(uint64_t block, uint32_t off, uint32_t len, char* out);
  // One round of tries; ABORTED if the layout moved under every one of them.
  absl::Status ReadSegmentOnce(uint64_t block, uint32_t off, uint32_t len, char* out);
  // The disk's failure policy and the replica count its placement asks for.
  struct IoPolicy {
    pb::FailurePolicy failure;
    uint32_t wanted = 1;
  };
  IoPolicy Policy() const;
  // Replicas of the block that must take a write (meta::ReplicasNeeded).
  uint32_t Needed(const IoPolicy& p, const BlockRef& ref) const;
  // The block's CLEAN replicas, nearest first (NodePool::ReadOrder).
  std::vector<std::string> CleanReplicas(const BlockRef& ref);
  // After a read served by `good`: marks each of `rotten` (which answered
  // that a page fails its checksum) STALE for the block, so it is repaired.
  void RepairRotten(uint64_t block, const std::vector<std::string>& rotten,
                    const std::string& good);
  // A read call for [off, off+len) of object `generation` of `block`
  // whose reply lands in `out`.
  void PrepareRead(const BlockRef& ref, uint64_t block, uint64_t generation, uint32_t off,
                   uint32_t len, char* out, wire::WireCall* call) const;
  // Writes one block's piece; held per the failure policy, counting from
  // `began` (when the write was first tried).
  // `partial`: the replicas that took an earlier try of this write that
  // others turned away (a new layout).
  absl::Status WriteSegment(uint64_t block, uint32_t off, const char* data, uint32_t len,
                            absl::Time began = absl::Now(), std::vector<std::string> partial = {});
  // One block I/O call to one node, kept with the client it went through.
  struct NodeCall {
    std::string node;
    std::shared_ptr<wire::WireClient> io;
    wire::WireCall call;
  };
  // One try at writing a block to its replicas.
  struct WriteAttempt {
    uint64_t block = 0;
    std::deque<NodeCall> calls;       // stable addresses while in flight
    std::vector<std::string> failed;  // replicas that did not take it
    std::vector<std::string> ok;      // and those that did
    std::set<std::string> syncing;    // replicas SYNCING when it was prepared
    absl::Status last;                // why the last of them failed
    uint32_t need = 1;                // replicas that must take it (the policy's)
    // Fewer than `need` took it: nothing was marked; WriteSegment holds and
    // retries, then gives up (GiveUp).
    bool short_of_replicas = false;
    // The block has a SYNCING replica and the write does not cover whole
    // sectors: nothing was prepared; WriteSegment widens it first.
    bool needs_sectors = false;
    // The write went out with a clone's copy-up (GiveOwnObject): done.
    bool written = false;
    uint64_t generation = 0;      // of the object written
    uint64_t layout_version = 0;  // it was sent under
  };
  // A WriteAsync in flight.
  struct AsyncWrite {
    WriteAttempt attempt;
    absl::Time began = absl::Now();
    std::string copy;  // the data, kept for a retry
    Done done;
    // One per call plus one for the starter (see ReadAsync): the last to
    // drop it runs `finish`.
    std::atomic<int> open{0};
  };
  // A WriteAsync whose fast path did not all go well, on the slow-path
  // pool: concluded (a dead replica marked stale), or written again through
  // WriteSegment (a layout to re-read, replicas short of the policy).
  absl::Status ConcludeOffFastPath(AsyncWrite* op, uint64_t block, uint32_t off, uint32_t len);
  // Takes the epoch and the block pointer and fills `a` with a call per
  // non-stale replica (not started).
  // `partial`: as GiveOwnObject's, from an earlier attempt of this write.
  absl::Status PrepareWrite(uint64_t block, uint32_t off, const char* data, uint32_t len,
                            WriteAttempt* a, const std::vector<std::string>& partial = {});
  // After every call of `a` completed: records dirty nodes, marks failed
  // replicas stale (ZooKeeper) once enough took it, sets `*retry` after
  // re-reading a newer layout, or sets a->short_of_replicas.
  absl::Status ConcludeWrite(WriteAttempt* a, bool* retry);
  // A write still short of replicas when the hold time is up: the replicas
  // that missed it are marked stale if any took it (they must not be read
  // for this block again), and `why` goes to the guest (EIO).
  absl::Status GiveUp(WriteAttempt* a, absl::Status why);
  // Flushes `nodes`, waiting until `deadline`; returns those that failed.
  std::set<std::string> FlushNodes(const std::set<std::string>& nodes, absl::Time deadline);
  // A write widened to whole sectors (the edges read from a clean replica),
  // for blocks being copied to a new replica.
  absl::Status WriteSectors(uint64_t block, uint32_t off, const char* data, uint32_t len);
  // Marks `nodes` STALE for `block` (after they failed a write) and refreshes.
  absl::Status MarkStale(uint64_t block, const std::vector<std::string>& nodes);
  pb::IoHeader Header(uint64_t layout_version, uint64_t epoch) const;

  meta::Catalog* catalog_;
  NodePool* pool_;
  const ClusterOptions* opts_;
  const uint64_t id_;
  std::function<void()> on_change_;
  AsyncIo* async_;
  const std::string snapshot_;

  // Blocks getting an object of their own: one writer at a time per block.
  absl::Mutex cow_mu_;
  std::set<uint64_t> cow_busy_ ABSL_GUARDED_BY(cow_mu_);
  // Pointer switches waiting per chunk, and the chunks one is being made for.
  absl::Mutex switch_mu_;
  absl::CondVar switch_cv_;
  std::map<uint64_t, std::vector<Switch*>> switch_queue_ ABSL_GUARDED_BY(switch_mu_);
  std::set<uint64_t> switching_ ABSL_GUARDED_BY(switch_mu_);

  absl::Mutex writer_mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(writer_mu_) = 0;  // 0: not the writer
  bool fenced_ ABSL_GUARDED_BY(writer_mu_) = false;

  mutable absl::Mutex mu_;
  pb::DiskSpec spec_ ABSL_GUARDED_BY(mu_);
  // The snapshot viewed (meta::kLiveView for the disk itself) and its size.
  uint64_t view_ ABSL_GUARDED_BY(mu_) = meta::kLiveView;
  uint64_t view_size_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<VolumeImpl> parent_ ABSL_GUARDED_BY(mu_);
  bool gone_ ABSL_GUARDED_BY(mu_) = false;
  bool writer_ ABSL_GUARDED_BY(mu_) = false;  // mirrors epoch_ != 0, for the chunk cache
  // nullptr: known unallocated (cached only while writer_).
  std::map<uint64_t, std::shared_ptr<const pb::BlockChunk>> chunks_ ABSL_GUARDED_BY(mu_);
  // Blocks written per node since the last flush.
  std::map<std::string, std::set<uint64_t>> dirty_ ABSL_GUARDED_BY(mu_);

  LifetimeGuard guard_;
};

}  // namespace ukai::client

#endif  // UKAI_CLIENT_VOLUME_IMPL_H_
