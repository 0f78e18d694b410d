#include "control/repair_plan.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ukai::control {

const pb::Replica* FindReplica(const pb::BlockPtr& ptr, const std::string& node) {
  for (const auto& r : ptr.replicas()) {
    if (r.node() == node) return &r;
  }
  return nullptr;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

pb::ObjectRef ObjectOf(uint64_t block, uint64_t generation) {
  pb::ObjectRef r;
  r.set_block(block);
  r.set_generation(generation);
  return r;
}

uint64_t BlockCount(const pb::DiskSpec& spec) {
  return (spec.size() + spec.block_size() - 1) / spec.block_size();
}

absl::StatusOr<std::vector<std::string>> RelocationTargets(const pb::BlockPtr& ptr,
                                                           const pb::Placement& target,
                                                           const std::vector<pb::NodeInfo>& nodes,
                                                           const std::set<std::string>& live,
                                                           uint64_t seed) {
  const size_t want = target.replicas();
  std::vector<std::string> candidates;
  if (!target.nodes().empty()) {
    candidates.assign(target.nodes().begin(), target.nodes().end());
  } else {
    std::set<std::string> sites(target.sites().begin(), target.sites().end());
    for (const auto& n : nodes) {
      if (sites.count(n.site())) candidates.push_back(n.id());
    }
    std::sort(candidates.begin(), candidates.end());
    if (!candidates.empty()) {  // spread blocks over the sites' nodes
      std::rotate(candidates.begin(),
                  candidates.begin() + static_cast<long>(seed % candidates.size()),
                  candidates.end());
    }
  }
  std::vector<std::string> out;
  // Replicas already in place stay (a resumed job finds its SYNCING ones here).
  for (const auto& r : ptr.replicas()) {
    if (out.size() < want && r.state() != pb::STALE && Contains(candidates, r.node())) {
      out.push_back(r.node());
    }
  }
  for (const auto& c : candidates) {
    if (out.size() >= want) break;
    if (!Contains(out, c) && live.count(c)) out.push_back(c);
  }
  if (out.size() < want) {
    return absl::UnavailableError(
        absl::StrFormat("%d replicas wanted, but only %d target nodes are up (%s)", want,
                        out.size(), absl::StrJoin(candidates, ",")));
  }
  return out;
}

RepairPlan PlanRepair(const pb::BlockPtr& ptr, const RepairScope& scope, uint64_t seed) {
  RepairPlan plan;
  const bool source = std::any_of(
      ptr.replicas().begin(), ptr.replicas().end(),
      [&](const pb::Replica& r) { return r.state() == pb::CLEAN && scope.live.count(r.node()); });
  if (!source) {  // the block waits for a clean replica to come back
    plan.kept.assign(ptr.replicas().begin(), ptr.replicas().end());
    return plan;
  }
  std::map<std::string, std::string> site_of;
  for (const auto& n : scope.nodes) site_of[n.id()] = n.site();
  std::vector<std::string> candidates;  // live, not leaving, holding none of the block
  for (const auto& n : scope.nodes) {
    if (scope.live.count(n.id()) && !scope.replace.count(n.id()) &&
        FindReplica(ptr, n.id()) == nullptr) {
      candidates.push_back(n.id());
    }
  }
  if (!candidates.empty()) {
    std::rotate(candidates.begin(),
                candidates.begin() + static_cast<long>(seed % candidates.size()), candidates.end());
  }
  const std::set<std::string> sites(scope.placement.sites().begin(), scope.placement.sites().end());
  const bool any_site = sites.empty() && scope.placement.nodes().empty();
  for (const auto& r : ptr.replicas()) {
    if (!scope.replace.count(r.node())) {
      if (scope.live.count(r.node())) {
        plan.targets.push_back(r.node());
      } else {
        plan.kept.push_back(r);
      }
      continue;
    }
    const std::string& lost_site = site_of[r.node()];
    auto pick = std::find_if(candidates.begin(), candidates.end(),
                             [&](const std::string& c) { return site_of[c] == lost_site; });
    if (pick == candidates.end()) {
      pick = std::find_if(candidates.begin(), candidates.end(), [&](const std::string& c) {
        return any_site || sites.count(site_of[c]);
      });
    }
    if (pick == candidates.end()) {
      plan.kept.push_back(r);  // nowhere to go yet
      continue;
    }
    plan.targets.push_back(*pick);
    candidates.erase(pick);
  }
  plan.work = plan.targets.size() + plan.kept.size() != static_cast<size_t>(ptr.replicas_size());
  for (const auto& t : plan.targets) {
    const pb::Replica* r = FindReplica(ptr, t);
    plan.work = plan.work || r == nullptr || r->state() != pb::CLEAN;
  }
  return plan;
}

RepairScope ScopeOf(const pb::JobRecord& job, const pb::DiskSpec& spec,
                    const std::vector<pb::NodeInfo>& nodes, const std::set<std::string>& live) {
  RepairScope scope;
  scope.live = live;
  scope.replace.insert(job.replace_nodes().begin(), job.replace_nodes().end());
  scope.nodes = nodes;
  scope.placement = spec.placement();
  return scope;
}

}  // namespace ukai::control
