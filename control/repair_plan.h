// Where a block's replicas should go: the targets of a relocation
// (RelocationTargets) and of a repair (PlanRepair). Pure functions of the
// block pointer and the cluster as read; thread-compatible.
#ifndef UKAI_CONTROL_REPAIR_PLAN_H_
#define UKAI_CONTROL_REPAIR_PLAN_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ukai.pb.h"

namespace ukai::control {

// The replica set block `ptr` should end up with under `target` (keeping
// replicas already there), from `live` nodes; UNAVAILABLE if too few.
absl::StatusOr<std::vector<std::string>> RelocationTargets(const pb::BlockPtr& ptr,
                                                           const pb::Placement& target,
                                                           const std::vector<pb::NodeInfo>& nodes,
                                                           const std::set<std::string>& live,
                                                           uint64_t seed);

// A repair (JobRecord REPAIR) runs the relocation steps with PlanRepair's
// targets: the block's own live replicas, STALE ones starting over from
// nothing (after a fence at the current layout) and joining as SYNCING like
// new replicas, plus new replicas for those on drained or long-dead nodes,
// which leave; replicas on nodes briefly down are left as they are.
//
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

// A repair job's scope, as of now.
RepairScope ScopeOf(const pb::JobRecord& job, const pb::DiskSpec& spec,
                    const std::vector<pb::NodeInfo>& nodes, const std::set<std::string>& live);

// Small helpers the jobs share.
const pb::Replica* FindReplica(const pb::BlockPtr& ptr, const std::string& node);
bool Contains(const std::vector<std::string>& v, const std::string& s);
pb::ObjectRef ObjectOf(uint64_t block, uint64_t generation);
uint64_t BlockCount(const pb::DiskSpec& spec);

}  // namespace ukai::control

#endif  // UKAI_CONTROL_REPAIR_PLAN_H_
