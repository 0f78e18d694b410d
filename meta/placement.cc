#include "meta/placement.h"

#include <algorithm>
#include <set>

#include "absl/hash/hash.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ukai::meta {
namespace {

uint64_t Score(uint64_t seed, const std::string& node) { return absl::HashOf(seed, node); }

}  // namespace

absl::Status ValidatePlacement(const pb::Placement& p, const std::vector<pb::NodeInfo>& nodes) {
  if (p.replicas() < 1 || p.replicas() > 8) {
    return absl::InvalidArgumentError(
        absl::StrFormat("replicas must be between 1 and 8, not %d", p.replicas()));
  }
  if (!p.nodes().empty() && !p.sites().empty()) {
    return absl::InvalidArgumentError("give either sites or nodes, not both");
  }
  std::set<std::string> known_nodes, known_sites;
  for (const auto& n : nodes) {
    known_nodes.insert(n.id());
    known_sites.insert(n.site());
  }
  size_t eligible = 0;
  if (!p.nodes().empty()) {
    std::set<std::string> uniq(p.nodes().begin(), p.nodes().end());
    if (uniq.size() != static_cast<size_t>(p.nodes().size())) {
      return absl::InvalidArgumentError("a node is listed twice");
    }
    for (const auto& n : p.nodes()) {
      if (!known_nodes.count(n)) return absl::InvalidArgumentError("unknown node '" + n + "'");
    }
    eligible = uniq.size();
  } else if (!p.sites().empty()) {
    for (const auto& s : p.sites()) {
      if (!known_sites.count(s)) return absl::InvalidArgumentError("unknown site '" + s + "'");
    }
    std::set<std::string> sites(p.sites().begin(), p.sites().end());
    for (const auto& n : nodes) eligible += sites.count(n.site());
  } else {
    eligible = nodes.size();
  }
  if (eligible < p.replicas()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%d replicas requested but only %d eligible node(s) exist", p.replicas(), eligible));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ChooseReplicas(const pb::Placement& p,
                                                        const std::vector<pb::NodeInfo>& live,
                                                        const std::string& prefer_site,
                                                        uint64_t seed) {
  std::vector<std::string> out;
  if (!p.nodes().empty()) {
    for (const auto& want : p.nodes()) {
      for (const auto& n : live) {
        if (n.id() == want && out.size() < p.replicas()) out.push_back(want);
      }
    }
  } else if (!p.sites().empty()) {
    // Per site, its live nodes ordered by score; then take round-robin.
    std::vector<std::vector<std::string>> per_site;
    for (const auto& site : p.sites()) {
      std::vector<std::string> ids;
      for (const auto& n : live) {
        if (n.site() == site) ids.push_back(n.id());
      }
      std::sort(ids.begin(), ids.end(), [&](const std::string& a, const std::string& b) {
        return Score(seed, a) < Score(seed, b);
      });
      per_site.push_back(std::move(ids));
    }
    for (size_t round = 0; out.size() < p.replicas(); ++round) {
      bool any = false;
      for (const auto& ids : per_site) {
        if (round < ids.size() && out.size() < p.replicas()) {
          out.push_back(ids[round]);
          any = true;
        }
      }
      if (!any) break;
    }
  } else {
    std::vector<const pb::NodeInfo*> order;
    for (const auto& n : live) order.push_back(&n);
    std::sort(order.begin(), order.end(), [&](const pb::NodeInfo* a, const pb::NodeInfo* b) {
      bool la = a->site() == prefer_site, lb = b->site() == prefer_site;
      if (la != lb) return la;
      return Score(seed, a->id()) < Score(seed, b->id());
    });
    for (const auto* n : order) {
      if (out.size() < p.replicas()) out.push_back(n->id());
    }
  }
  if (out.empty()) {
    return absl::UnavailableError("no live node is eligible for this disk's placement");
  }
  return out;
}

absl::Status ValidateFailurePolicy(const pb::FailurePolicy& f, const pb::Placement& p) {
  if (!pb::FailurePolicy::OnReplicaFailure_IsValid(f.on_replica_failure())) {
    return absl::InvalidArgumentError("on_replica_failure must be degrade or wait");
  }
  if (f.min_replicas() > p.replicas()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "min replicas %d is more than the disk's %d replicas", f.min_replicas(), p.replicas()));
  }
  if (f.min_replicas() != 0 && f.on_replica_failure() == pb::FailurePolicy::WAIT) {
    return absl::InvalidArgumentError(
        "min replicas applies to on-replica-failure degrade (wait needs every replica)");
  }
  if (f.hold_ms() > kMaxHoldMs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "hold time %d ms is more than the longest, %d ms", f.hold_ms(), kMaxHoldMs));
  }
  return absl::OkStatus();
}

uint32_t ReplicasNeeded(const pb::FailurePolicy& f, uint32_t wanted, uint32_t in_pointer) {
  const uint32_t need = f.on_replica_failure() == pb::FailurePolicy::WAIT ? wanted : MinReplicas(f);
  return std::max<uint32_t>(1, std::min(need, in_pointer));
}

}  // namespace ukai::meta
