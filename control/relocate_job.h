// Relocator: runs a relocation job (JobRecord RELOCATE) to its end, from
// whatever state ZooKeeper holds, so any node can pick up a job whose runner
// died. Blocks move a batch at a time; per batch (docs/ARCHITECTURE.md,
// "Relocation"):
//
//   A  the new replicas join as SYNCING (layout V1): writers send them every
//      write, tracked, so the copy never overwrites it;
//   B  every involved node is fenced at V1: no write that skips the new
//      replicas can still land on the sources;
//   C  each new replica pulls the object from a clean source, then syncs (the
//      old replicas, which held the flushed writes durably, are about to go);
//   D  the clean-up owed is written to the job, then in one chunk update the
//      new replicas become CLEAN and the old ones leave (layout V2), refused
//      if a new replica went STALE meanwhile (the batch is copied again);
//   E  every involved node is fenced at V2: no read or write under V1 is left;
//   F  the new replicas forget their marks, the old ones drop their data,
//      and the job's cursor moves on.
//
// A crash anywhere leaves ZooKeeper in a state the next run continues from:
// the pending list of D, the replica states of A and D, and the cursor of F.
// Cancelling stops at the next batch boundary (or retry), takes back any
// replica still SYNCING, and restores the disk's placement policy; blocks
// already moved stay moved, every block readable throughout.
#ifndef UKAI_NODE_RELOCATOR_H_
#define UKAI_NODE_RELOCATOR_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/rate_limiter.h"
#include "meta/catalog.h"
#include "ukai.pb.h"

namespace ukai::node {

// What a job needs of the nodes: the NodeCopy service, by node id.
class CopyNodes {
 public:
  virtual ~CopyNodes() = default;
  virtual absl::Status Fence(const std::string& node, uint64_t disk, uint64_t layout) = 0;
  // `dst` pulls the object from `src`; returns the bytes copied.
  virtual absl::StatusOr<uint64_t> Copy(const std::string& dst, const std::string& src,
                                        const pb::IoHeader& hdr, uint64_t block,
                                        uint64_t generation, uint64_t bandwidth_bps) = 0;
  // Clears marks of, or drops, objects of one disk on `node`; returns the
  // blocks the node refused because ZooKeeper says they must stay.
  virtual absl::StatusOr<std::vector<uint64_t>> Finish(
      const std::string& node, const pb::IoHeader& hdr, const std::vector<pb::ObjectRef>& objects,
      pb::FinishObjectRequest::What what) = 0;
  // The objects of blocks [first, first + n) that hold data on `node`.
  virtual absl::StatusOr<std::vector<pb::ObjectRef>> Objects(const std::string& node,
                                                             const pb::IoHeader& hdr,
                                                             uint64_t first, uint64_t n) = 0;
  // Scrub: every page of one object on `node`, checked (ChecksumsResponse).
  virtual absl::StatusOr<pb::ChecksumsResponse> Checksums(const std::string& node,
                                                          const pb::IoHeader& hdr, uint64_t block,
                                                          uint64_t generation) = 0;
  // Makes what `node` stored durable.
  virtual absl::Status Sync(const std::string& node) = 0;
  // Bytes of `disk` stored on `node`, for the progress estimate.
  virtual absl::StatusOr<uint64_t> StoredBytes(const std::string& node, uint64_t disk) = 0;
  // `node` drops its objects of `disk` the block table no longer names
  // (pb::CollectRequest); returns how many.
  virtual absl::StatusOr<uint64_t> Collect(const std::string& node, uint64_t disk) = 0;
  // `node` fills a clone's object from an ancestor's (pb::FillRequest).
  virtual absl::StatusOr<pb::FillResponse> Fill(const std::string& node,
                                                const pb::FillRequest& req) = 0;
  // Block I/O kCopyUp on `node` (pb::CopyUpRequest): a rollback's copies.
  virtual absl::Status CopyUp(const std::string& node, const pb::CopyUpRequest& req) = 0;
};

// The header of a job's requests for disk `disk` under layout `layout`.
inline pb::IoHeader JobHdr(uint64_t disk, uint64_t layout) {
  pb::IoHeader h;
  h.set_disk_id(disk);
  h.set_layout_version(layout);
  return h;
}

struct RelocatorOptions {
  uint32_t batch_blocks = 32;  // blocks switched per chunk update
  uint32_t parallel_copies = 4;  // block copies in flight at once
  absl::Duration retry_min = absl::Milliseconds(200), retry_max = absl::Seconds(5);
  // Tests: called at each named step; returning true makes Run stop right
  // there as if the runner had died (ABORTED).
  std::function<bool(const std::string& point)> crash_at;
};

class Relocator {
 public:
  Relocator(std::string self, meta::Catalog* catalog, CopyNodes* nodes,
            RelocatorOptions opts = {})
      : self_(std::move(self)), catalog_(catalog), nodes_(nodes), opts_(std::move(opts)) {}

  // Runs job `id` until it is DONE, CANCELLED or FAILED (OK), or until
  // `stop` says so (ABORTED; the job stays RUNNING for the next runner).
  absl::Status Run(const std::string& id, const std::function<bool()>& stop);

 private:
  absl::Status RunJob(pb::JobRecord* job);
  // SCRUB (node/scrub.cc): compares every allocated block's CLEAN replicas
  // page by page; a replica with a page failing its checksum is marked STALE
  // (never the last clean one) and a repair started once the scrub ends.
  absl::Status RunScrub(pb::JobRecord* job);
  // FLATTEN (node/flatten.cc): a clone's blocks still read from its parent
  // are filled into its own objects, then the parent link goes.
  absl::Status RunFlatten(pb::JobRecord* job);
  // Fills the job's progress estimate (bytes and blocks to move).
  absl::Status EstimateTotals(pb::JobRecord* job, const std::map<uint64_t, pb::BlockChunk>& chunks,
                              const pb::DiskSpec& spec);
  // CANCELLED (and cancel_seen_) once someone asked the job to stop.
  absl::Status CheckCancel(const std::string& id);
  // What a test's crash point makes the run return: the runner is "dead".
  absl::Status Crashed(const std::string& point);
  // One attempt at moving blocks [first, first + n) of chunk `c`;
  // `copied_any` says whether any block held data to copy.
  absl::Status MoveBatch(pb::JobRecord* job, uint64_t c, uint64_t first, uint64_t n,
                         bool* copied_any);
  // Fences every live node of `involved` at the disk's current layout, then
  // does the job's pending clean-up and clears the list.
  absl::Status FinishPending(pb::JobRecord* job);
  // Takes back SYNCING replicas of the current batch and ends the job.
  absl::Status Cancel(pb::JobRecord* job, uint64_t c, uint64_t first, uint64_t n);
  absl::Status FenceAll(uint64_t disk, uint64_t layout, const std::set<std::string>& nodes);
  // Test crash points; called from copy threads too, so one at a time.
  bool Crash(const std::string& point) {
    absl::MutexLock l(&crash_mu_);
    return opts_.crash_at && opts_.crash_at(point);
  }
  absl::Mutex crash_mu_;
  std::function<bool()> stop_;
  std::atomic<bool> crashed_{false}, cancel_seen_{false};
  std::unique_ptr<RateLimiter> pace_;  // the job's --bandwidth, across blocks

  const std::string self_;
  meta::Catalog* catalog_;
  CopyNodes* nodes_;
  const RelocatorOptions opts_;
};

// A repair (JobRecord REPAIR) runs the same steps with PlanRepair's targets:
// the block's own live replicas, STALE ones starting over from nothing
// (after a fence at the current layout) and joining as SYNCING like new
// replicas, plus new replicas for those on drained or long-dead nodes, which
// leave; replicas on nodes briefly down are left as they are.
//
// The replica set block `ptr` should end up with under `target` (keeping
// replicas already there), from `live` nodes; UNAVAILABLE if too few.
absl::StatusOr<std::vector<std::string>> RelocationTargets(const pb::BlockPtr& ptr,
                                                           const pb::Placement& target,
                                                           const std::vector<pb::NodeInfo>& nodes,
                                                           const std::set<std::string>& live,
                                                           uint64_t seed);

// What a repair works with: which nodes are up, whose replicas move
// elsewhere, and where the disk's policy lets a replacement go.
struct RepairScope {
  std::set<std::string> live;
  std::set<std::string> replace;    // drained, or down past the grace time
  std::vector<pb::NodeInfo> nodes;  // registered
  pb::Placement placement;          // the disk's
};
struct RepairPlan {
  std::vector<std::string> targets;  // to end CLEAN
  std::vector<pb::Replica> kept;     // left as they are
  bool work = false;                 // the block's replicas are not that yet
};
// For a repair of block `ptr` (nothing to do without a CLEAN replica up to
// copy from): its replicas on live nodes are targets, those on nodes down
// (but not replaced) are kept, and each one on a `replace` node is rebuilt on
// a live node holding none of the block: the same site first, another site
// only if the policy allows it (its sites, or no site or node named); with
// no such node it is kept. `seed` spreads blocks over the candidates.
RepairPlan PlanRepair(const pb::BlockPtr& ptr, const RepairScope& scope, uint64_t seed);

}  // namespace ukai::node

#endif  // UKAI_NODE_RELOCATOR_H_
