#include "ctl/format.h"

#include <map>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/units.h"
#include "meta/failure_policy.h"

namespace ukai::ctl {
namespace {

using meta::HoldMs;
using meta::MinReplicas;

bool Waits(const pb::FailurePolicy& f) { return f.on_replica_failure() == pb::FailurePolicy::WAIT; }

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& r) {
  return std::vector<std::string>(r.begin(), r.end());
}

unsigned long U(uint64_t v) { return static_cast<unsigned long>(v); }

}  // namespace

std::string Time(uint64_t ms) {
  if (ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(static_cast<int64_t>(ms)),
                          absl::LocalTimeZone());
}

std::string PlacementText(const pb::Placement& p) {
  std::string s = absl::StrFormat("%d replica(s)", p.replicas());
  if (!p.sites().empty()) s += " in sites " + absl::StrJoin(p.sites(), ",");
  if (!p.nodes().empty()) s += " on nodes " + absl::StrJoin(p.nodes(), ",");
  return s;
}

std::string PolicyText(const pb::DiskSpec& d) {
  const auto& f = d.failure();
  std::string what = Waits(f)
                         ? absl::StrFormat("wait for all %d replicas", d.placement().replicas())
                         : absl::StrFormat("degrade down to %d replica(s)", MinReplicas(f));
  return absl::StrFormat("%s; I/O short of them is held %s, then EIO", what,
                         absl::FormatDuration(absl::Milliseconds(HoldMs(f))));
}

json SpecJson(const pb::DiskSpec& d) {
  const bool waits = Waits(d.failure());
  return json{{"id", d.id()},
              {"name", d.name()},
              {"size", d.size()},
              {"block_size", d.block_size()},
              {"replicas", d.placement().replicas()},
              {"sites", Strings(d.placement().sites())},
              {"nodes", Strings(d.placement().nodes())},
              {"layout_version", d.layout_version()},
              {"created_ms", d.created_ms()},
              {"state", d.state() == pb::DiskSpec::READY ? "ready" : "deleting"},
              {"on_replica_failure", waits ? "wait" : "degrade"},
              {"min_replicas", waits ? d.placement().replicas() : MinReplicas(d.failure())},
              {"hold_ms", HoldMs(d.failure())},
              {"generation", d.generation()},
              {"snapshots", d.snapshots_size()},
              {"rolling_back", d.rolling_back()},
              {"parent", d.has_parent() ? json(d.parent().disk_name() + "@" + d.parent().snapshot())
                                        : json(nullptr)}};
}

json InfoJson(const pb::DiskInfo& info) {
  json j = SpecJson(info.spec());
  j["allocated_bytes"] = info.allocated_bytes();
  j["allocated_chunks"] = info.allocated_chunks();
  j["stale_replica_blocks"] = info.stale_blocks();
  j["degraded_blocks"] = info.degraded_blocks();
  j["syncing_blocks"] = info.syncing_blocks();
  j["job"] = info.job();
  j["node_bytes"] = json::object();
  for (const auto& [n, b] : info.node_bytes()) j["node_bytes"][n] = b;
  j["open_for_writing_by"] = json::array();
  for (const auto& o : info.open_by()) {
    j["open_for_writing_by"].push_back(
        {{"host", o.host()}, {"site", o.site()}, {"since_ms", o.since_ms()}});
  }
  j["writer"] = {{"epoch", info.writer().epoch()},
                 {"host", info.writer().host()},
                 {"site", info.writer().site()},
                 {"since_ms", info.writer().since_ms()}};
  j["unreachable_nodes"] = Strings(info.unreachable_nodes());
  if (!info.from_site().empty()) {
    j["from_site"] = info.from_site();
    j["reads_from"] = json::array();
    for (const auto& r : info.reads_from()) {
      j["reads_from"].push_back(
          {{"node", r.node()}, {"site", r.site()}, {"rtt_us", r.rtt_us()}, {"blocks", r.blocks()}});
    }
  }
  return j;
}

namespace {

void PrintSpecText(const pb::DiskSpec& d) {
  printf("name:        %s\n", d.name().c_str());
  printf("id:          %lu\n", U(d.id()));
  printf("size:        %s (%lu bytes)\n", FormatSize(d.size()).c_str(), U(d.size()));
  printf("block size:  %s\n", FormatSize(d.block_size()).c_str());
  printf("placement:   %s\n", PlacementText(d.placement()).c_str());
  printf("on failure:  %s\n", PolicyText(d).c_str());
  printf("created:     %s\n", Time(d.created_ms()).c_str());
  printf("layout:      version %lu\n", U(d.layout_version()));
  if (d.has_parent()) {
    printf("clone of:    %s@%s (reads through to it until flattened)\n",
           d.parent().disk_name().c_str(), d.parent().snapshot().c_str());
  }
  if (d.snapshots_size() > 0) {
    std::vector<std::string> names;
    for (const auto& s : d.snapshots()) names.push_back(s.name());
    printf("snapshots:   %d (%s)\n", d.snapshots_size(), absl::StrJoin(names, ", ").c_str());
  }
  if (!d.rolling_back().empty()) {
    printf("rollback:    to %s not finished: run `ukaictl snap rollback %s@%s` again\n",
           d.rolling_back().c_str(), d.name().c_str(), d.rolling_back().c_str());
  }
  if (d.state() != pb::DiskSpec::READY) printf("state:       deleting\n");
}

void PrintUsageText(const pb::DiskInfo& info) {
  printf("allocated:   %s stored over all replicas\n", FormatSize(info.allocated_bytes()).c_str());
  for (const auto& [n, b] : info.node_bytes()) {
    printf("  on %-8s %s\n", n.c_str(), FormatSize(b).c_str());
  }
  if (info.stale_blocks() || info.degraded_blocks()) {
    printf("degraded:    %lu block(s) short of %u clean replicas up, %lu with a stale replica\n",
           U(info.degraded_blocks()), info.spec().placement().replicas(), U(info.stale_blocks()));
  }
  if (!info.job().empty()) {
    printf("job:         %s (%lu block(s) being copied now)\n", info.job().c_str(),
           U(info.syncing_blocks()));
  }
  if (info.writer().epoch()) {
    printf("writer:      epoch %lu, %s (site %s) since %s\n", U(info.writer().epoch()),
           info.writer().host().c_str(), info.writer().site().c_str(),
           Time(info.writer().since_ms()).c_str());
  }
  for (const auto& o : info.open_by()) {
    printf("open by:     %s (site %s) since %s\n", o.host().c_str(), o.site().c_str(),
           Time(o.since_ms()).c_str());
  }
  if (!info.unreachable_nodes().empty()) {
    printf("unreachable: %s (their bytes are not counted)\n",
           absl::StrJoin(info.unreachable_nodes(), ",").c_str());
  }
}

void PrintReadsFromText(const pb::DiskInfo& info) {
  printf("reads from %s:\n", info.from_site().c_str());
  for (const auto& r : info.reads_from()) {
    if (r.node().empty()) {
      printf("  %lu block(s): no clean replica is up\n", U(r.blocks()));
      continue;
    }
    printf("  %-8s (%s, %s) %lu block(s)\n", r.node().c_str(), r.site().c_str(),
           r.rtt_us() ? absl::StrFormat("%.2f ms", r.rtt_us() / 1000.0).c_str() : "rtt unknown",
           U(r.blocks()));
  }
}

}  // namespace

void PrintInfoText(const pb::DiskInfo& info) {
  PrintSpecText(info.spec());
  if (!info.has_writer() && info.open_by().empty() && info.allocated_bytes() == 0 &&
      info.allocated_chunks() == 0) {
    return;  // a fresh reply of create/resize carries only the spec
  }
  PrintUsageText(info);
  if (!info.from_site().empty()) PrintReadsFromText(info);
}

json NodesJson(const pb::ListNodesResponse& resp) {
  json arr = json::array();
  for (const auto& n : resp.nodes()) {
    arr.push_back({{"id", n.info().id()},
                   {"site", n.info().site()},
                   {"address", n.info().address()},
                   {"io_address", n.info().io_address()},
                   {"up", n.up()},
                   {"used_bytes", n.used_bytes()},
                   {"capacity_bytes", n.info().capacity_bytes()},
                   {"rtt_us_by_site", std::map<std::string, uint32_t>(n.rtt_us_by_site().begin(),
                                                                      n.rtt_us_by_site().end())},
                   {"draining", n.state().draining()},
                   {"down_since_ms", n.state().down_since_ms()},
                   {"replica_blocks", n.replica_blocks()},
                   {"error", n.error()}});
  }
  return arr;
}

void PrintNodesText(const pb::ListNodesResponse& resp) {
  printf("%-10s %-10s %-22s %-5s %12s %12s %8s  %s\n", "ID", "SITE", "ADDRESS", "STATE", "USED",
         "CAPACITY", "BLOCKS", "RTT FROM FRONTENDS / NOTE");
  for (const auto& n : resp.nodes()) {
    std::vector<std::string> rtt;
    for (const auto& [site, us] :
         std::map<std::string, uint32_t>(n.rtt_us_by_site().begin(), n.rtt_us_by_site().end())) {
      rtt.push_back(absl::StrFormat("%s %.2f ms", site, us / 1000.0));
    }
    // Progress of a drain or rebuild: BLOCKS, the replicas still listed on it, falls to 0.
    std::string note = rtt.empty() ? "-" : absl::StrJoin(rtt, ", ");
    if (n.state().draining()) note = "draining: its replicas move to other nodes";
    if (!n.up() && n.state().down_since_ms())
      note = "down since " + Time(n.state().down_since_ms());
    printf("%-10s %-10s %-22s %-5s %12s %12s %8lu  %s\n", n.info().id().c_str(),
           n.info().site().c_str(), n.info().address().c_str(), n.up() ? "up" : "down",
           n.up() ? FormatSize(n.used_bytes()).c_str() : "-",
           n.info().capacity_bytes() ? FormatSize(n.info().capacity_bytes()).c_str() : "-",
           U(n.replica_blocks()), note.c_str());
  }
}

}  // namespace ukai::ctl
