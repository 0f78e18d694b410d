// The rules of generations, snapshots and copy-on-write on one block pointer
// (docs/ARCHITECTURE.md, "Snapshots and clones"). Pure functions: the
// catalog, the client, the jobs and the nodes' collector all decide with
// these, and the unit tests pin them down.
//
// A block's states form a timeline: `kept` (oldest first), then the current
// one. Each state began at its generation; a snapshot that froze generation s
// reads, per block, the newest state that began at or before s. A state is
// an object (written at that generation, held by the block's replicas) or
// `inherited` (a clone's block with nothing of its own: the parent's view).
// A block with no state that old reads as zeros, or as the parent on a clone.
#ifndef UKAI_META_GENERATIONS_H_
#define UKAI_META_GENERATIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ukai.pb.h"

namespace ukai::meta {

// The view of the disk as it is now (not a snapshot).
constexpr uint64_t kLiveView = UINT64_MAX;
// Snapshots one disk may hold (each may keep one older state per block in
// the block table; this keeps a chunk's znode far under ZooKeeper's 1 MB).
constexpr int kMaxSnapshots = 128;

struct BlockView {
  enum Kind { kZeros, kObject, kParent };
  Kind kind = kZeros;
  uint64_t generation = 0;  // kObject: the object to read
};

// What `ptr` reads as at snapshot generation `at` (kLiveView: now). `clone`:
// the disk has a parent (unallocated and inherited states read through).
BlockView ViewOf(const pb::BlockPtr& ptr, uint64_t at, bool clone);
// The same for a block whose chunk is not allocated.
inline BlockView Unallocated(bool clone) {
  return BlockView{clone ? BlockView::kParent : BlockView::kZeros, 0};
}

// The generations of every object the block's replicas hold for it: the
// current one unless inherited, and the kept ones that are objects.
std::vector<uint64_t> OwnObjects(const pb::BlockPtr& ptr);

// True if a write must first give the block an object of its own at the
// disk's current generation: its current state is inherited, or a snapshot
// reads the current object.
bool NeedsNewObject(const pb::BlockPtr& ptr, const pb::DiskSpec& spec);

// Makes the block's current state the object `generation` (> every state's),
// keeping the old current state if a snapshot of `spec` reads it.
void Advance(pb::BlockPtr* ptr, uint64_t generation, const pb::DiskSpec& spec);

// Removes the kept states no snapshot of `spec` reads any more. Returns
// whether anything changed.
bool Prune(pb::BlockPtr* ptr, const pb::DiskSpec& spec);

// Blocks whose state only snapshot `snap` reads (not the current state, not
// another snapshot): what deleting it would free, in blocks.
bool ExclusiveTo(const pb::BlockPtr& ptr, const pb::DiskSpec& spec, uint64_t snap_generation);

// The snapshot named `name`, or nullptr.
const pb::Snapshot* FindSnapshot(const pb::DiskSpec& spec, const std::string& name);
// The newest snapshot generation of `spec`, or nullopt-like 0 with `any` false.
bool NewestSnapshot(const pb::DiskSpec& spec, uint64_t* generation);

}  // namespace ukai::meta

#endif  // UKAI_META_GENERATIONS_H_
