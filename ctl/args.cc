#include "ctl/args.h"

#include <CLI/CLI.hpp>

#include "absl/time/time.h"
#include "common/status.h"
#include "ctl/ukaictl.h"
#include "meta/failure_policy.h"

namespace ukai::ctl {

void AddPlacementFlags(CLI::App* cmd, PlacementArgs* a, const std::string& sites_help,
                       const std::string& nodes_help, const std::string& replicas_help) {
  cmd->add_option("--replicas", a->replicas, replicas_help);
  auto* sites = cmd->add_option("--sites", a->sites, sites_help);
  cmd->add_option("--nodes", a->nodes, nodes_help)->excludes(sites);
}

absl::Status FillPlacement(const PlacementArgs& a, pb::Placement* p) {
  if (a.replicas < 0) return absl::InvalidArgumentError("--replicas must be positive");
  p->set_replicas(static_cast<uint32_t>(a.replicas));
  for (auto& s : ListArg(a.sites)) p->add_sites(s);
  for (auto& n : ListArg(a.nodes)) p->add_nodes(n);
  return absl::OkStatus();
}

absl::Status FillBlockSize(const std::string& text, pb::CreateDiskRequest* req) {
  if (text.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(uint64_t bs, SizeArg(text));
  if (bs > UINT32_MAX) return absl::InvalidArgumentError("block size too large");
  req->set_block_size(static_cast<uint32_t>(bs));
  return absl::OkStatus();
}

void AddPolicyFlags(CLI::App* cmd, PolicyArgs* a) {
  cmd->add_option("--on-replica-failure", a->on_failure,
                  "when a replica fails a write: 'degrade' acknowledges it once --min-replicas "
                  "replicas took it (the others are marked stale and repaired later); 'wait' "
                  "holds it until every replica takes it. Default degrade")
      ->check(CLI::IsMember({"degrade", "wait"}));
  cmd->add_option("--min-replicas", a->min_replicas,
                  "with degrade: the fewest replicas a write must reach (default 1)");
  cmd->add_option("--hold", a->hold,
                  "how long I/O short of its replicas is held and retried before the guest "
                  "gets EIO, e.g. 30s, 500ms, 5m (default 30s, at most 1h)");
}

absl::Status ApplyPolicy(const PolicyArgs& a, pb::FailurePolicy* f) {
  if (a.min_replicas == 0 || a.min_replicas > 8) {
    return absl::InvalidArgumentError("--min-replicas must be between 1 and 8");
  }
  absl::Duration hold;
  if (!a.hold.empty() && (!absl::ParseDuration(a.hold, &hold) || hold <= absl::ZeroDuration() ||
                          hold > absl::Milliseconds(meta::kMaxHoldMs))) {
    return absl::InvalidArgumentError("--hold: '" + a.hold +
                                      "' is not a duration between 1ms and 1h (e.g. 30s)");
  }
  if (a.on_failure == "wait") f->set_on_replica_failure(pb::FailurePolicy::WAIT);
  if (a.on_failure == "degrade") f->set_on_replica_failure(pb::FailurePolicy::DEGRADE);
  if (f->on_replica_failure() == pb::FailurePolicy::WAIT) f->set_min_replicas(0);
  if (a.min_replicas > 0) f->set_min_replicas(static_cast<uint32_t>(a.min_replicas));
  if (!a.hold.empty()) f->set_hold_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(hold)));
  return absl::OkStatus();
}

}  // namespace ukai::ctl
