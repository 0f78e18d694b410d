// Placement: which nodes hold the replicas of a newly allocated chunk.
// Pure functions; thread-safe.
#ifndef UKAI_META_PLACEMENT_H_
#define UKAI_META_PLACEMENT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "meta/failure_policy.h"
#include "ukai.pb.h"

namespace ukai::meta {

// Checks a policy against the registered nodes: known sites/nodes, enough
// distinct nodes for the replica count. INVALID_ARGUMENT / FAILED_PRECONDITION.
absl::Status ValidatePlacement(const pb::Placement& p, const std::vector<pb::NodeInfo>& nodes);

// Picks up to p.replicas() distinct nodes among `live` for one chunk:
//  - explicit nodes: those of p.nodes() that are live, in order;
//  - sites: round-robin over p.sites() in order, a node per site by `seed`;
//  - neither: nodes of `prefer_site` first (data next to the VM), then others.
// Within a tier the choice is spread by `seed` (disk id and chunk), so chunks
// of one disk spread over nodes. Returns fewer than p.replicas() when not
// enough eligible nodes are live (a degraded allocation) and UNAVAILABLE when
// none is.
absl::StatusOr<std::vector<std::string>> ChooseReplicas(const pb::Placement& p,
                                                        const std::vector<pb::NodeInfo>& live,
                                                        const std::string& prefer_site,
                                                        uint64_t seed);

// Checks a failure policy against the placement it goes with: min_replicas
// at most the replica count, the hold time at most kMaxHoldMs.
// INVALID_ARGUMENT.
absl::Status ValidateFailurePolicy(const pb::FailurePolicy& f, const pb::Placement& p);

// How many replicas must take a write of a block before it is acknowledged:
// DEGRADE: min_replicas (at least 1); WAIT: every one of the placement's
// `wanted`. Never more than the block's pointer has (`in_pointer`).
uint32_t ReplicasNeeded(const pb::FailurePolicy& f, uint32_t wanted, uint32_t in_pointer);

}  // namespace ukai::meta

#endif  // UKAI_META_PLACEMENT_H_
