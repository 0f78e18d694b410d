// Catalog: the metadata model of nodes and disks on a MetaStore (the tree in
// docs/ZOOKEEPER.md). Every change is a compare-and-set or an atomic Multi, so
// concurrent controllers never overwrite each other and a failed operation
// leaves nothing half made. Thread-safe (stateless over the store).
#ifndef UKAI_META_CATALOG_H_
#define UKAI_META_CATALOG_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "meta/layout.h"
#include "meta/meta_store.h"
#include "ukai.pb.h"

namespace ukai::meta {

// How long finished jobs stay listed (ukai-node --job-keep-hours, --job-keep-max).
struct JobRetention {
  absl::Duration keep = absl::Hours(24 * 7);
  int keep_max = 1000;
};

struct VersionedSpec {
  pb::DiskSpec spec;
  int32_t version = 0;
};

struct VersionedJob {
  pb::JobRecord job;
  int32_t version = 0;
};

struct VersionedChunk {
  pb::BlockChunk chunk;
  int32_t version = 0;
};

class Catalog {
 public:
  // `store` must outlive the catalog.
  Catalog(MetaStore* store, std::string root) : store_(store), paths_(std::move(root)) {}

  MetaStore& store() { return *store_; }
  const Paths& paths() const { return paths_; }

  // Creates the top-level folders if missing.
  absl::Status Init();

  // ---- nodes
  // Writes the node's persistent record and its ephemeral liveness znode.
  // ALREADY_EXISTS if another live process registered the same id.
  absl::Status RegisterNode(const pb::NodeInfo& info, const pb::NodeLive& live);
  absl::StatusOr<std::vector<pb::NodeInfo>> ListNodes();
  // Every registered node's NodeState (defaults where none was written).
  absl::StatusOr<std::map<std::string, pb::NodeState>> NodeStates();
  // Compare-and-set on node `id`'s state; `change` returns whether it changed
  // anything (nothing is written otherwise). NOT_FOUND for an unknown node.
  absl::StatusOr<pb::NodeState> UpdateNodeState(const std::string& id,
                                                const std::function<bool(pb::NodeState*)>& change);
  // Removes a node's registration and state. The caller checks it is down
  // and holds nothing.
  absl::Status RemoveNode(const std::string& id);
  absl::StatusOr<std::set<std::string>> LiveNodes(WatchFn watch = nullptr);

  // ---- frontends (what each measures; ephemeral)
  absl::Status PublishFrontend(const pb::FrontendRecord& r);
  absl::StatusOr<std::vector<pb::FrontendRecord>> ListFrontends();

  // ---- disks
  // Validates name, size, block size and placement; then creates every znode
  // of the disk in one Multi. ALREADY_EXISTS for a taken name.
  absl::StatusOr<pb::DiskSpec> CreateDisk(const pb::CreateDiskRequest& req);
  // NOT_FOUND "no disk named 'x'".
  absl::StatusOr<uint64_t> LookupName(const std::string& name, WatchFn watch = nullptr);
  absl::StatusOr<VersionedSpec> GetSpec(uint64_t id, WatchFn watch = nullptr);
  absl::StatusOr<pb::DiskSpec> GetByName(const std::string& name);
  absl::StatusOr<std::vector<std::string>> ListNames(WatchFn watch = nullptr);
  absl::StatusOr<std::vector<uint64_t>> ListDiskIds(WatchFn watch = nullptr);
  absl::StatusOr<std::vector<pb::DiskSpec>> ListDisks();
  // Grows a disk; INVALID_ARGUMENT for a smaller or malformed size.
  absl::StatusOr<pb::DiskSpec> Resize(const std::string& name, uint64_t size);
  // Replaces a disk's failure policy (checked against its placement).
  absl::StatusOr<pb::DiskSpec> SetFailurePolicy(const std::string& name,
                                                const pb::FailurePolicy& policy);
  // Step 1 of delete: FAILED_PRECONDITION while open for writing (unless
  // force) or while it has snapshots; else marks the disk DELETING and
  // removes its name (and a clone's mark on its parent's snapshot), atomically.
  absl::StatusOr<pb::DiskSpec> BeginDelete(const std::string& name, bool force);
  // Step 2, after the nodes dropped the data: removes the disk's znodes.
  absl::Status FinishDelete(uint64_t id);

  // ---- snapshots and clones (meta/snapshots.cc; the rules: meta/generations.h)
  // Freezes the disk's current generation as snapshot `snap` and bumps it
  // and the layout version, in one compare-and-set: constant time, no data
  // touched. The caller then fences the nodes (writes still under the old
  // layout are turned away and retried copy-on-write). ALREADY_EXISTS for a
  // taken name, FAILED_PRECONDITION past kMaxSnapshots.
  absl::StatusOr<pb::DiskSpec> CreateSnapshot(const std::string& disk, const std::string& snap,
                                              const std::string& restored_from = "");
  // Removes the snapshot record (FAILED_PRECONDITION naming its clones, if
  // any), then prunes the block table: the objects only it read are no
  // longer referenced, and each node's collector drops them.
  absl::StatusOr<pb::DiskSpec> DeleteSnapshot(const std::string& disk, const std::string& snap);
  // Drops, chunk by chunk, kept states no snapshot reads (meta::Prune). Safe
  // to repeat; a delete that died half way is finished by the next one.
  absl::Status PruneBlockTable(uint64_t id);
  // Makes disk `name` a clone of `parent`@`snap`: a new disk of the
  // snapshot's size and block size whose blocks read through to it, and the
  // snapshot's clone list, in one Multi. `placement`: empty for the parent's.
  absl::StatusOr<pb::DiskSpec> CloneDisk(const std::string& parent, const std::string& snap,
                                         const std::string& name, pb::Placement placement);
  // Rollback's first step: marks disk `id` rolling back to `snap` and moves
  // its write generation on (the copies take the new one), in one
  // compare-and-set; a rollback to the same snapshot already marked (one
  // that died half way) keeps its generation. Its last step clears the mark.
  absl::StatusOr<pb::DiskSpec> BeginRollback(uint64_t id, const std::string& snap);
  absl::StatusOr<pb::DiskSpec> EndRollback(uint64_t id);
  // Flatten's last step: the clone `id` no longer reads its parent (its
  // parent link and the snapshot's mark of it go in one Multi).
  absl::StatusOr<pb::DiskSpec> DetachParent(uint64_t id);

  absl::StatusOr<std::vector<pb::OpenRecord>> OpenBy(uint64_t id);
  absl::StatusOr<pb::WriterRecord> Writer(uint64_t id);
  // All allocated chunks of a disk, by chunk index.
  absl::StatusOr<std::map<uint64_t, pb::BlockChunk>> ReadChunks(uint64_t id);

  // ---- block table (the client's side of the data path)
  // nullopt when the chunk is not allocated (its blocks read as zeros).
  absl::StatusOr<std::optional<VersionedChunk>> ReadChunk(uint64_t id, uint64_t chunk,
                                                          WatchFn watch = nullptr);
  // Creates the chunk's pointers on `replicas`; if another client won the
  // race, returns theirs.
  absl::StatusOr<VersionedChunk> AllocateChunk(const pb::DiskSpec& spec, uint64_t chunk,
                                               const std::vector<std::string>& replicas);
  // Marks `node` STALE for `block` and bumps the disk's layout version in one
  // Multi, retrying on conflicts. Returns the new spec. NOT_FOUND if the disk
  // is gone.
  absl::StatusOr<pb::DiskSpec> MarkStale(uint64_t id, uint64_t block, const std::string& node);
  // Applies `change` to chunk `chunk` of disk `id` and bumps the disk's
  // layout version, in one Multi, retrying on conflicts. `change` returns
  // whether it changed anything; if not, nothing is written and the current
  // spec comes back. NOT_FOUND if the disk or the chunk is gone.
  using ChunkChange = std::function<absl::StatusOr<bool>(pb::BlockChunk*)>;
  absl::StatusOr<pb::DiskSpec> UpdateChunk(uint64_t id, uint64_t chunk, const ChunkChange& change);
  // UpdateChunk for a change that depends on the spec (its snapshots, its
  // generation): `change` sees the spec the Multi is conditioned on. With
  // `chunk_out`, it gets the chunk as written (or, unchanged, as read after
  // the spec that comes back: at least as new as that spec).
  using SpecChunkChange = std::function<absl::StatusOr<bool>(const pb::DiskSpec&, pb::BlockChunk*)>;
  absl::StatusOr<pb::DiskSpec> UpdateChunkWithSpec(uint64_t id, uint64_t chunk,
                                                   const SpecChunkChange& change,
                                                   pb::BlockChunk* chunk_out = nullptr);
  // Takes the next writer epoch for `host`, recording `identity` (the
  // taker's certificate, "frontend hv7"; empty when plaintext) as the only
  // one nodes admit its writes from. Returns it.
  absl::StatusOr<uint64_t> TakeWriterEpoch(uint64_t id, const std::string& host,
                                           const std::string& site,
                                           const std::string& identity = "");

  // ---- jobs (meta/jobs.cc)
  // Starts moving disk `name` to `target` (sites or nodes, replica count
  // kept): validates, then in one Multi creates the job, the disk's job
  // marker (one job per disk: FAILED_PRECONDITION naming the running one)
  // and sets the disk's placement to `target` so new chunks go there.
  absl::StatusOr<pb::JobRecord> StartRelocation(const std::string& name, pb::Placement target,
                                                uint64_t bandwidth_bps);
  // Starts a repair of disk `name`: one Multi creates the job and the disk's
  // job marker (FAILED_PRECONDITION naming a job already running). The
  // runner brings every STALE replica on a live node back to CLEAN.
  // `replace`: nodes whose replicas the job rebuilds elsewhere.
  absl::StatusOr<pb::JobRecord> StartRepair(const std::string& name, uint64_t bandwidth_bps,
                                            const std::vector<std::string>& replace = {});
  // Starts a scrub of disk `name` (one Multi, as StartRepair): its CLEAN
  // replicas are compared page by page, rotten ones marked STALE.
  absl::StatusOr<pb::JobRecord> StartScrub(const std::string& name, uint64_t bandwidth_bps);
  // Starts flattening clone `name` (FAILED_PRECONDITION if it is no clone).
  absl::StatusOr<pb::JobRecord> StartFlatten(const std::string& name, uint64_t bandwidth_bps);
  absl::StatusOr<VersionedJob> GetJob(const std::string& id, WatchFn watch = nullptr);
  absl::StatusOr<std::vector<pb::JobRecord>> ListJobs(WatchFn watch = nullptr);
  // Removes finished jobs (done, failed, cancelled) that ended longer than
  // `r.keep` before `now`, and the oldest beyond the newest `r.keep_max`.
  // How many it removed. Safe to run on every node at once.
  absl::StatusOr<int> PruneJobs(const JobRetention& r, absl::Time now);
  // Compare-and-set on the job record, retried; `change` may be called more than once.
  absl::StatusOr<pb::JobRecord> UpdateJob(const std::string& id,
                                          const std::function<void(pb::JobRecord*)>& change);
  // Sets the job's final state and removes the disk's job marker, atomically.
  absl::StatusOr<pb::JobRecord> FinishJob(const std::string& id, pb::JobRecord::State state,
                                          const std::string& error);
  // Sets disk `id`'s placement policy (layout version bumped), e.g. back to
  // what it was when a relocation is cancelled.
  absl::StatusOr<pb::DiskSpec> SetPlacement(uint64_t id, const pb::Placement& placement);
  // Asks the runner to stop. FAILED_PRECONDITION if the job already ended.
  absl::StatusOr<pb::JobRecord> CancelJob(const std::string& id);

 private:
  absl::StatusOr<pb::JobRecord> StartDiskJob(const std::string& name, pb::JobRecord::Kind kind,
                                             uint64_t bandwidth_bps,
                                             const std::vector<std::string>& replace);
  absl::StatusOr<uint64_t> NewDiskId();
  // Compare-and-set on disk `id`'s spec, retried: `change` (an error stops
  // it), then the layout version bumped.
  absl::StatusOr<pb::DiskSpec> ChangeSpec(uint64_t id,
                                          const std::function<absl::Status(pb::DiskSpec*)>& change);
  // Creates the znodes of disk `id` for `spec` (id, layout version and
  // creation time filled in here) and `more`, in one Multi.
  absl::Status CreateDiskRecords(pb::DiskSpec* spec, uint64_t id, std::vector<Op> more);
  // The compare-and-set on a clone's parent that removes `clone` from the
  // snapshot's clone list; nullopt if the parent or the mark is gone.
  absl::StatusOr<std::optional<Op>> ForgetClone(const pb::ParentRef& parent, uint64_t clone);
  // FAILED_PRECONDITION if disk `id` has a job running (naming it), else OK.
  absl::Status NoJobRunning(uint64_t id, const std::string& name);
  MetaStore* store_;
  Paths paths_;
};

}  // namespace ukai::meta

#endif  // UKAI_META_CATALOG_H_
