// ukaictl's arguments that several commands share (placement, failure
// policy, block size): the flags, and their checked translation into the
// admin requests. Unit tested without a cluster.
#ifndef UKAI_CTL_ARGS_H_
#define UKAI_CTL_ARGS_H_

#include <string>

#include "absl/status/status.h"
#include "ukai.pb.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace ukai::ctl {

// --replicas, --sites, --nodes (the last two exclusive).
struct PlacementArgs {
  int replicas = 0;  // 0: the default (2, the number of --nodes, or the parent's)
  std::string sites, nodes;
};
void AddPlacementFlags(CLI::App* cmd, PlacementArgs* a, const std::string& sites_help,
                       const std::string& nodes_help, const std::string& replicas_help);
// INVALID_ARGUMENT for a negative --replicas.
absl::Status FillPlacement(const PlacementArgs& a, pb::Placement* p);

// --block-size; empty keeps the default.
absl::Status FillBlockSize(const std::string& text, pb::CreateDiskRequest* req);

// --on-replica-failure, --min-replicas, --hold: unset flags keep what is there.
struct PolicyArgs {
  std::string on_failure, hold;
  int min_replicas = -1;
};
void AddPolicyFlags(CLI::App* cmd, PolicyArgs* a);
// INVALID_ARGUMENT (nothing changed) for --min-replicas outside 1..8 or a
// --hold that is not a duration between 1ms and 1h.
absl::Status ApplyPolicy(const PolicyArgs& a, pb::FailurePolicy* f);

}  // namespace ukai::ctl

#endif  // UKAI_CTL_ARGS_H_
