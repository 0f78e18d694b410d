// ukaictl: the operator's command-line tool, a thin client of the Admin gRPC
// service every ukai-node serves. Exit 0 on success; on failure one line
// "ukaictl: <what went wrong>" on stderr and exit 1 (2 for usage errors).
#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include <map>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/units.h"
#include "ctl/jobs.h"
#include "ctl/transfer.h"
#include "ctl/ukaictl.h"
#include "meta/failure_policy.h"
#include "ukai.grpc.pb.h"

namespace {

using ukai::ctl::Admin;
using ukai::ctl::Call;
using ukai::ctl::Connect;
using ukai::ctl::ConnectData;
using ukai::ctl::Die;
using ukai::ctl::GetJob;
using ukai::ctl::Globals;
using ukai::ctl::JobFraction;
using ukai::ctl::JobJson;
using ukai::ctl::JobKind;
using ukai::ctl::JobList;
using ukai::ctl::JobState;
using ukai::ctl::JobWait;
using ukai::ctl::MakeAdminOps;
using ukai::ctl::PrintJson;
using ukai::ctl::PrintTransfer;
using ukai::ctl::TargetText;
using ukai::ctl::json;

uint64_t SizeArg(const std::string& text) {
  auto v = ukai::ParseSize(text);
  if (!v.ok()) Die(std::string(v.status().message()));
  return *v;
}

std::vector<std::string> ListArg(const std::string& text) {
  std::vector<std::string> out = absl::StrSplit(text, ',', absl::SkipEmpty());
  return out;
}

std::string Time(uint64_t ms) {
  if (ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(static_cast<int64_t>(ms)),
                          absl::LocalTimeZone());
}

std::string PlacementText(const ukai::pb::Placement& p) {
  std::string s = absl::StrFormat("%d replica(s)", p.replicas());
  if (!p.sites().empty()) s += " in sites " + absl::StrJoin(p.sites(), ",");
  if (!p.nodes().empty()) s += " on nodes " + absl::StrJoin(p.nodes(), ",");
  return s;
}

// The policy as it acts: defaults filled in.
using ukai::meta::HoldMs;
using ukai::meta::MinReplicas;
bool Waits(const ukai::pb::FailurePolicy& f) { return f.on_replica_failure() == ukai::pb::FailurePolicy::WAIT; }

std::string PolicyText(const ukai::pb::DiskSpec& d) {
  const auto& f = d.failure();
  std::string what = Waits(f) ? absl::StrFormat("wait for all %d replicas", d.placement().replicas())
                              : absl::StrFormat("degrade down to %d replica(s)", MinReplicas(f));
  return absl::StrFormat("%s; I/O short of them is held %s, then EIO", what,
                         absl::FormatDuration(absl::Milliseconds(HoldMs(f))));
}

json SpecJson(const ukai::pb::DiskSpec& d) {
  return json{{"id", d.id()},
              {"name", d.name()},
              {"size", d.size()},
              {"block_size", d.block_size()},
              {"replicas", d.placement().replicas()},
              {"sites", std::vector<std::string>(d.placement().sites().begin(), d.placement().sites().end())},
              {"nodes", std::vector<std::string>(d.placement().nodes().begin(), d.placement().nodes().end())},
              {"layout_version", d.layout_version()},
              {"created_ms", d.created_ms()},
              {"state", d.state() == ukai::pb::DiskSpec::READY ? "ready" : "deleting"},
              {"on_replica_failure", Waits(d.failure()) ? "wait" : "degrade"},
              {"min_replicas", Waits(d.failure()) ? d.placement().replicas() : MinReplicas(d.failure())},
              {"hold_ms", HoldMs(d.failure())},
              {"generation", d.generation()},
              {"snapshots", d.snapshots_size()},
              {"rolling_back", d.rolling_back()},
              {"parent", d.has_parent() ? json(d.parent().disk_name() + "@" + d.parent().snapshot())
                                        : json(nullptr)}};
}


void NodeList(const Globals& g) {
  auto resp = Call<ukai::pb::ListNodesRequest, ukai::pb::ListNodesResponse>(
      g, &Admin::Stub::ListNodes, ukai::pb::ListNodesRequest());
  if (g.json) {
    json arr = json::array();
    for (const auto& n : resp.nodes()) {
      arr.push_back({{"id", n.info().id()}, {"site", n.info().site()},
                     {"address", n.info().address()}, {"io_address", n.info().io_address()},
                     {"up", n.up()},
                     {"used_bytes", n.used_bytes()}, {"capacity_bytes", n.info().capacity_bytes()},
                     {"rtt_us_by_site", std::map<std::string, uint32_t>(n.rtt_us_by_site().begin(),
                                                                        n.rtt_us_by_site().end())},
                     {"draining", n.state().draining()},
                     {"down_since_ms", n.state().down_since_ms()},
                     {"replica_blocks", n.replica_blocks()},
                     {"error", n.error()}});
    }
    return PrintJson(arr);
  }
  printf("%-10s %-10s %-22s %-5s %12s %12s %8s  %s\n", "ID", "SITE", "ADDRESS", "STATE", "USED",
         "CAPACITY", "BLOCKS", "RTT FROM FRONTENDS / NOTE");
  for (const auto& n : resp.nodes()) {
    std::vector<std::string> rtt;
    for (const auto& [site, us] : std::map<std::string, uint32_t>(n.rtt_us_by_site().begin(),
                                                                  n.rtt_us_by_site().end())) {
      rtt.push_back(absl::StrFormat("%s %.2f ms", site, us / 1000.0));
    }
    // Progress of a drain or rebuild: BLOCKS, the replicas still listed on it, falls to 0.
    std::string note = rtt.empty() ? "-" : absl::StrJoin(rtt, ", ");
    if (n.state().draining()) note = "draining: its replicas move to other nodes";
    if (!n.up() && n.state().down_since_ms()) note = "down since " + Time(n.state().down_since_ms());
    printf("%-10s %-10s %-22s %-5s %12s %12s %8lu  %s\n", n.info().id().c_str(), n.info().site().c_str(),
           n.info().address().c_str(), n.up() ? "up" : "down",
           n.up() ? ukai::FormatSize(n.used_bytes()).c_str() : "-",
           n.info().capacity_bytes() ? ukai::FormatSize(n.info().capacity_bytes()).c_str() : "-",
           static_cast<unsigned long>(n.replica_blocks()), note.c_str());
  }
}

void PrintInfo(const Globals& g, const ukai::pb::DiskInfo& info) {
  const auto& d = info.spec();
  if (g.json) {
    json j = SpecJson(d);
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
      j["open_for_writing_by"].push_back({{"host", o.host()}, {"site", o.site()}, {"since_ms", o.since_ms()}});
    }
    j["writer"] = {{"epoch", info.writer().epoch()}, {"host", info.writer().host()},
                   {"site", info.writer().site()}, {"since_ms", info.writer().since_ms()}};
    j["unreachable_nodes"] = std::vector<std::string>(info.unreachable_nodes().begin(),
                                                      info.unreachable_nodes().end());
    if (!info.from_site().empty()) {
      j["from_site"] = info.from_site();
      j["reads_from"] = json::array();
      for (const auto& r : info.reads_from()) {
        j["reads_from"].push_back({{"node", r.node()}, {"site", r.site()}, {"rtt_us", r.rtt_us()},
                                   {"blocks", r.blocks()}});
      }
    }
    return PrintJson(j);
  }
  printf("name:        %s\n", d.name().c_str());
  printf("id:          %lu\n", static_cast<unsigned long>(d.id()));
  printf("size:        %s (%lu bytes)\n", ukai::FormatSize(d.size()).c_str(), static_cast<unsigned long>(d.size()));
  printf("block size:  %s\n", ukai::FormatSize(d.block_size()).c_str());
  printf("placement:   %s\n", PlacementText(d.placement()).c_str());
  printf("on failure:  %s\n", PolicyText(d).c_str());
  printf("created:     %s\n", Time(d.created_ms()).c_str());
  printf("layout:      version %lu\n", static_cast<unsigned long>(d.layout_version()));
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
  if (d.state() != ukai::pb::DiskSpec::READY) printf("state:       deleting\n");
  if (!info.has_writer() && info.open_by().empty() && info.allocated_bytes() == 0 &&
      info.allocated_chunks() == 0) {
    return;  // a fresh reply of create/resize carries only the spec
  }
  printf("allocated:   %s stored over all replicas\n", ukai::FormatSize(info.allocated_bytes()).c_str());
  for (const auto& [n, b] : info.node_bytes()) {
    printf("  on %-8s %s\n", n.c_str(), ukai::FormatSize(b).c_str());
  }
  if (info.stale_blocks() || info.degraded_blocks()) {
    printf("degraded:    %lu block(s) short of %u clean replicas up, %lu with a stale replica\n",
           static_cast<unsigned long>(info.degraded_blocks()), d.placement().replicas(),
           static_cast<unsigned long>(info.stale_blocks()));
  }
  if (!info.job().empty()) {
    printf("job:         %s (%lu block(s) being copied now)\n", info.job().c_str(),
           static_cast<unsigned long>(info.syncing_blocks()));
  }
  if (info.writer().epoch()) {
    printf("writer:      epoch %lu, %s (site %s) since %s\n", static_cast<unsigned long>(info.writer().epoch()),
           info.writer().host().c_str(), info.writer().site().c_str(), Time(info.writer().since_ms()).c_str());
  }
  for (const auto& o : info.open_by()) {
    printf("open by:     %s (site %s) since %s\n", o.host().c_str(), o.site().c_str(), Time(o.since_ms()).c_str());
  }
  if (!info.unreachable_nodes().empty()) {
    printf("unreachable: %s (their bytes are not counted)\n", absl::StrJoin(info.unreachable_nodes(), ",").c_str());
  }
  if (!info.from_site().empty()) {
    printf("reads from %s:\n", info.from_site().c_str());
    for (const auto& r : info.reads_from()) {
      if (r.node().empty()) {
        printf("  %lu block(s): no clean replica is up\n", static_cast<unsigned long>(r.blocks()));
        continue;
      }
      printf("  %-8s (%s, %s) %lu block(s)\n", r.node().c_str(), r.site().c_str(),
             r.rtt_us() ? absl::StrFormat("%.2f ms", r.rtt_us() / 1000.0).c_str() : "rtt unknown",
             static_cast<unsigned long>(r.blocks()));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  CLI::App app{"ukaictl: manage UKAI virtual disks.\n"
               "Talks to the admin service of any ukai-node (UKAI_ADMIN=host:port[,host:port] or "
               "--admin). Sizes take K/M/G/T/P suffixes (powers of 1024)."};
  app.require_subcommand(1);
  app.fallthrough();  // --json, --admin and --timeout also after the subcommand
  app.footer(R"(Examples:
  ukaictl node list
  ukaictl disk create vm1 --size 20G --replicas 2 --sites site-a,site-b
  ukaictl disk info vm1 --json
  ukaictl disk resize vm1 --size 40G      (online; mounts see the new size)
  ukaictl disk policy vm1 --on-replica-failure wait --hold 2m
  ukaictl disk delete vm1 [--force]      (refused while open for writing)
  ukaictl snap create vm1@before-upgrade   (constant time, while the VM runs)
  ukaictl clone gold@v3 vm9               (instant; writable at once)
  ukaictl backup vm1@mon vm1-mon.ukb --since sun   (incremental, no mount)
  ukaictl restore vm1-sun.ukb vm1r && ukaictl restore vm1-mon.ukb vm1r
  ukaictl relocate vm1 --sites site-b --bandwidth 200M   (prints a job id)
  ukaictl job wait job-1a2b3c4d          (progress bar; exit 0 when done)

Exit status: 0 on success; 1 on failure, with one line "ukaictl: <reason>" on
stderr; 2 on a usage error. With --json, results are printed as JSON on stdout.)");
  app.add_option("--admin", g.admin, "admin address(es), comma-separated; default $UKAI_ADMIN");
  app.add_flag("--json", g.json, "print machine-readable JSON");
  app.add_option("--timeout", g.timeout_s, "seconds to wait for the admin service")
      ->capture_default_str();
  app.add_option("--zk", g.zk,
                 "ZooKeeper, for backup/restore/export/import (they read and write the disks "
                 "themselves); default $UKAI_ZK or 127.0.0.1:2181");
  app.add_option("--zk-root", g.zk_root, "the cluster's root znode")->capture_default_str();
  app.add_option("--site", g.site, "this host's site: data is read from replicas there first "
                                   "(default $UKAI_SITE)");
  app.add_option("--parallel", g.parallel, "blocks in flight when moving data")->capture_default_str();

  auto* node = app.add_subcommand("node", "storage nodes");
  node->require_subcommand(1);
  node->add_subcommand("list", "list nodes: id, site, address, up/down, space used, block "
                               "replicas held (a drained or rebuilt node's falls to 0)")
      ->callback([&] { NodeList(g); });
  std::string node_id;
  bool undo = false;
  auto* drain = node->add_subcommand(
      "drain", "move every replica off a node, to other nodes of its site first (another "
               "site only where a disk's policy allows it): the nodes' repair scans start a "
               "repair job per disk. The node keeps serving meanwhile; watch BLOCKS in "
               "`node list` fall to 0, then stop it and `node remove` it");
  drain->add_option("id", node_id, "node id")->required();
  drain->add_flag("--undo", undo, "stop draining (replicas already moved stay moved)");
  drain->callback([&] {
    ukai::pb::NodeRequest req;
    req.set_id(node_id);
    req.set_undo(undo);
    auto r = Call<ukai::pb::NodeRequest, ukai::pb::NodeStatus>(g, &Admin::Stub::DrainNode, req);
    if (g.json) return PrintJson(json{{"id", node_id}, {"draining", r.state().draining()}});
    printf("node %s %s\n", node_id.c_str(), r.state().draining() ? "is draining" : "is not draining");
  });
  auto* remove = node->add_subcommand(
      "remove", "forget a node for good: refused while it is up or still holds a replica "
                "(drain it first)");
  remove->add_option("id", node_id, "node id")->required();
  remove->callback([&] {
    ukai::pb::NodeRequest req;
    req.set_id(node_id);
    Call<ukai::pb::NodeRequest, ukai::pb::NodeStatus>(g, &Admin::Stub::RemoveNode, req);
    if (g.json) return PrintJson(json{{"removed", node_id}});
    printf("node %s removed\n", node_id.c_str());
  });

  auto* disk = app.add_subcommand("disk", "virtual disks");
  disk->require_subcommand(1);

  std::string name, size_text, sites, nodes, block_size_text;
  int replicas = 0;
  bool force = false;
  // The failure policy, for create and policy: unset flags keep what is there.
  std::string on_failure, hold_text;
  int min_replicas = -1;
  auto add_policy_flags = [&](CLI::App* cmd) {
    cmd->add_option("--on-replica-failure", on_failure,
                    "when a replica fails a write: 'degrade' acknowledges it once --min-replicas "
                    "replicas took it (the others are marked stale and repaired later); 'wait' "
                    "holds it until every replica takes it. Default degrade")
        ->check(CLI::IsMember({"degrade", "wait"}));
    cmd->add_option("--min-replicas", min_replicas,
                    "with degrade: the fewest replicas a write must reach (default 1)");
    cmd->add_option("--hold", hold_text,
                    "how long I/O short of its replicas is held and retried before the guest "
                    "gets EIO, e.g. 30s, 500ms, 5m (default 30s, at most 1h)");
  };
  auto apply_policy_flags = [&](ukai::pb::FailurePolicy* f) {
    if (on_failure == "wait") f->set_on_replica_failure(ukai::pb::FailurePolicy::WAIT);
    if (on_failure == "degrade") f->set_on_replica_failure(ukai::pb::FailurePolicy::DEGRADE);
    if (f->on_replica_failure() == ukai::pb::FailurePolicy::WAIT) f->set_min_replicas(0);
    if (min_replicas == 0 || min_replicas > 8) Die("--min-replicas must be between 1 and 8");
    if (min_replicas > 0) f->set_min_replicas(static_cast<uint32_t>(min_replicas));
    if (!hold_text.empty()) {
      absl::Duration d;
      if (!absl::ParseDuration(hold_text, &d) || d <= absl::ZeroDuration() ||
          d > absl::Milliseconds(ukai::meta::kMaxHoldMs)) {
        Die("--hold: '" + hold_text + "' is not a duration between 1ms and 1h (e.g. 30s)");
      }
      f->set_hold_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(d)));
    }
  };
  auto* create = disk->add_subcommand("create", "create a thin-provisioned disk");
  create->add_option("name", name, "disk name: 1-64 of A-Z a-z 0-9 . _ -")->required();
  create->add_option("--size", size_text, "size, a multiple of 512 bytes (e.g. 20G)")->required();
  create->add_option("--replicas", replicas, "copies of every block (default 2, or the number of --nodes)");
  auto* sites_opt = create->add_option("--sites", sites, "sites to place replicas in, in order (a,b)");
  create->add_option("--nodes", nodes, "explicit nodes to place replicas on (n1,n2)")->excludes(sites_opt);
  create->add_option("--block-size", block_size_text, "placement unit, a power of two (default 4M)");
  add_policy_flags(create);
  create->callback([&] {
    ukai::pb::CreateDiskRequest req;
    req.set_name(name);
    req.set_size(SizeArg(size_text));
    if (!block_size_text.empty()) {
      uint64_t bs = SizeArg(block_size_text);
      if (bs > UINT32_MAX) Die("block size too large");
      req.set_block_size(static_cast<uint32_t>(bs));
    }
    if (replicas < 0) Die("--replicas must be positive");
    req.mutable_placement()->set_replicas(static_cast<uint32_t>(replicas));
    for (auto& s : ListArg(sites)) req.mutable_placement()->add_sites(s);
    for (auto& n : ListArg(nodes)) req.mutable_placement()->add_nodes(n);
    apply_policy_flags(req.mutable_failure());
    auto info = Call<ukai::pb::CreateDiskRequest, ukai::pb::DiskInfo>(g, &Admin::Stub::CreateDisk, req);
    if (g.json) return PrintJson(SpecJson(info.spec()));
    printf("created disk %s: %s, %s\n", info.spec().name().c_str(),
           ukai::FormatSize(info.spec().size()).c_str(), PlacementText(info.spec().placement()).c_str());
  });

  disk->add_subcommand("list", "list disks")->callback([&] {
    auto resp = Call<ukai::pb::ListDisksRequest, ukai::pb::ListDisksResponse>(
        g, &Admin::Stub::ListDisks, ukai::pb::ListDisksRequest());
    if (g.json) {
      json arr = json::array();
      for (const auto& d : resp.disks()) arr.push_back(SpecJson(d));
      return PrintJson(arr);
    }
    printf("%-24s %6s %12s %10s  %s\n", "NAME", "ID", "SIZE", "BLOCK", "PLACEMENT");
    for (const auto& d : resp.disks()) {
      printf("%-24s %6lu %12s %10s  %s\n", d.name().c_str(), static_cast<unsigned long>(d.id()),
             ukai::FormatSize(d.size()).c_str(), ukai::FormatSize(d.block_size()).c_str(),
             PlacementText(d.placement()).c_str());
    }
  });

  std::string from_site;
  auto* info = disk->add_subcommand("info", "show a disk: spec, placement, space, writer");
  info->add_option("name", name, "disk name")->required();
  info->add_option("--from", from_site,
                   "also show which replicas a frontend in this site reads, and their "
                   "round-trip time as that site's frontends measure it");
  info->callback([&] {
    ukai::pb::DiskRequest req;
    req.set_name(name);
    req.set_from_site(from_site);
    PrintInfo(g, Call<ukai::pb::DiskRequest, ukai::pb::DiskInfo>(g, &Admin::Stub::GetDisk, req));
  });

  auto* resize = disk->add_subcommand("resize", "grow a disk online (mounts see the new size)");
  resize->add_option("name", name, "disk name")->required();
  resize->add_option("--size", size_text, "new size, not smaller than the current one")->required();
  resize->callback([&] {
    ukai::pb::ResizeDiskRequest req;
    req.set_name(name);
    req.set_size(SizeArg(size_text));
    auto r = Call<ukai::pb::ResizeDiskRequest, ukai::pb::DiskInfo>(g, &Admin::Stub::ResizeDisk, req);
    if (g.json) return PrintJson(SpecJson(r.spec()));
    printf("disk %s is now %s\n", r.spec().name().c_str(), ukai::FormatSize(r.spec().size()).c_str());
  });

  auto* policy = disk->add_subcommand(
      "policy", "change what a disk's I/O does when replicas fail; hosts that have it open "
                "follow at once. Flags not given keep their value");
  policy->add_option("name", name, "disk name")->required();
  add_policy_flags(policy);
  policy->callback([&] {
    ukai::pb::DiskRequest get;
    get.set_name(name);
    auto cur = Call<ukai::pb::DiskRequest, ukai::pb::DiskInfo>(g, &Admin::Stub::GetDisk, get);
    ukai::pb::SetPolicyRequest req;
    req.set_name(name);
    *req.mutable_failure() = cur.spec().failure();
    apply_policy_flags(req.mutable_failure());
    auto r = Call<ukai::pb::SetPolicyRequest, ukai::pb::DiskInfo>(g, &Admin::Stub::SetPolicy, req);
    if (g.json) return PrintJson(SpecJson(r.spec()));
    printf("disk %s: on replica failure, %s\n", r.spec().name().c_str(), PolicyText(r.spec()).c_str());
  });

  auto* del = disk->add_subcommand("delete", "delete a disk and its data");
  del->add_option("name", name, "disk name")->required();
  del->add_flag("--force", force, "delete even while a host has it open for writing");
  del->callback([&] {
    ukai::pb::DiskRequest req;
    req.set_name(name);
    req.set_force(force);
    auto r = Call<ukai::pb::DiskRequest, ukai::pb::DiskInfo>(g, &Admin::Stub::DeleteDisk, req);
    if (g.json) return PrintJson(json{{"deleted", r.spec().name()}, {"id", r.spec().id()}});
    printf("deleted disk %s\n", r.spec().name().c_str());
  });

  std::string bandwidth_text, job_id;
  bool wait = false;
  auto* relocate = app.add_subcommand(
      "relocate",
      "move a disk's data to other sites or nodes while it is in use: starts a job and prints "
      "its id. Blocks move in batches; each batch's reads switch to the new replicas as soon "
      "as they are copied. Only allocated data is copied.");
  relocate->add_option("name", name, "disk name")->required();
  auto* rsites = relocate->add_option("--sites", sites, "sites to move the replicas to (a,b)");
  relocate->add_option("--nodes", nodes, "nodes to move the replicas to (n3,n4), at least as many as replicas")
      ->excludes(rsites);
  relocate->add_option("--bandwidth", bandwidth_text,
                       "copy rate limit for this job, bytes/s (e.g. 200M; default: none beyond "
                       "each node's --copy-bandwidth)");
  relocate->add_flag("--wait", wait, "wait for the job, with a progress bar (as `job wait`)");
  relocate->callback([&] {
    ukai::pb::RelocateRequest req;
    req.set_name(name);
    for (auto& s : ListArg(sites)) req.add_sites(s);
    for (auto& n : ListArg(nodes)) req.add_nodes(n);
    if (req.sites().empty() && req.nodes().empty()) Die("say where to: --sites or --nodes");
    if (!bandwidth_text.empty()) req.set_bandwidth_bps(SizeArg(bandwidth_text));
    auto j = Call<ukai::pb::RelocateRequest, ukai::pb::JobRecord>(g, &Admin::Stub::Relocate, req);
    if (wait) return JobWait(g, j.id());
    if (g.json) return PrintJson(JobJson(j));
    printf("%s\n", j.id().c_str());
  });

  // `disk repair` and `scrub`: start a job on disk `name`, then wait or print its id.
  auto start_disk_job = [&](auto method) {
    ukai::pb::RepairRequest req;
    req.set_name(name);
    if (!bandwidth_text.empty()) req.set_bandwidth_bps(SizeArg(bandwidth_text));
    auto j = Call<ukai::pb::RepairRequest, ukai::pb::JobRecord>(g, method, req);
    if (wait) return JobWait(g, j.id());
    if (g.json) return PrintJson(JobJson(j));
    printf("%s\n", j.id().c_str());
  };
  auto* repair = disk->add_subcommand(
      "repair",
      "bring the disk's replicas back to full health: every replica on a node that is up but "
      "missed writes (marked stale) is copied again from a clean one, only the blocks it "
      "missed, and replicas on draining nodes are rebuilt elsewhere. Nodes start this by "
      "themselves (ukai-node --repair-interval, --rereplicate-after); this starts it now. "
      "Prints the job id");
  repair->add_option("name", name, "disk name")->required();
  repair->add_option("--bandwidth", bandwidth_text,
                     "copy rate limit for this job, bytes/s (e.g. 200M; default: none beyond "
                     "each node's --copy-bandwidth)");
  repair->add_flag("--wait", wait, "wait for the job, with a progress bar (as `job wait`)");
  repair->callback([&] { start_disk_job(&Admin::Stub::Repair); });

  auto* scrub = app.add_subcommand(
      "scrub",
      "check a disk's data: every stored page of every clean replica is read and checked "
      "against its checksum, and replicas' checksums are compared. A replica with a page that "
      "fails is marked stale (never the last good one) and a repair copies it back. A job: "
      "prints its id; `job info ID` lists what it found");
  scrub->add_option("name", name, "disk name")->required();
  scrub->add_option("--bandwidth", bandwidth_text, "read rate limit, bytes/s (e.g. 100M; default: none)");
  scrub->add_flag("--wait", wait, "wait for the job, with a progress bar, then print what it found");
  scrub->callback([&] { start_disk_job(&Admin::Stub::Scrub); });

  auto* flatten = app.add_subcommand(
      "flatten",
      "make a clone independent of its parent while it is in use: a job copies every block it "
      "still reads from the parent's snapshot into its own objects (at its own placement), "
      "then drops the link; the snapshot can then be deleted. Prints the job id");
  flatten->add_option("name", name, "the clone")->required();
  flatten->add_option("--bandwidth", bandwidth_text, "copy rate limit, bytes/s (e.g. 200M; default: none)");
  flatten->add_flag("--wait", wait, "wait for the job, with a progress bar (as `job wait`)");
  flatten->callback([&] { start_disk_job(&Admin::Stub::Flatten); });

  auto* job = app.add_subcommand("job", "long-running jobs (relocation, repair, scrub, flatten)");
  job->require_subcommand(1);
  job->add_subcommand("list", "list jobs: id, disk, target, state, progress")
      ->callback([&] { JobList(g); });
  auto* jwait = job->add_subcommand(
      "wait", "wait for a job to end, with a progress bar on a terminal (copied / estimated "
              "bytes, rate, ETA); exit 0 if it finished, 1 if it was cancelled or failed");
  jwait->add_option("id", job_id, "job id")->required();
  jwait->callback([&] { JobWait(g, job_id); });
  auto* jinfo = job->add_subcommand("info", "show one job");
  jinfo->add_option("id", job_id, "job id")->required();
  jinfo->callback([&] {
    auto j = GetJob(g, job_id);
    if (g.json) return PrintJson(JobJson(j));
    printf("job:       %s (%s)\n", j.id().c_str(), JobKind(j));
    printf("disk:      %s\n", j.disk_name().c_str());
    printf("to:        %s\n", TargetText(j).c_str());
    printf("state:     %s%s\n", JobState(j.state()), j.cancel_requested() && j.state() == ukai::pb::JobRecord::RUNNING ? " (cancelling)" : "");
    printf("progress:  %.0f%%, %s of ~%s, %lu of %lu blocks\n", 100 * JobFraction(j),
           ukai::FormatSize(j.bytes_done()).c_str(), ukai::FormatSize(j.bytes_total()).c_str(),
           static_cast<unsigned long>(j.blocks_done()), static_cast<unsigned long>(j.blocks_total()));
    if (j.bandwidth_bps()) printf("bandwidth: %s/s\n", ukai::FormatSize(j.bandwidth_bps()).c_str());
    if (!j.runner().empty()) printf("runner:    %s\n", j.runner().c_str());
    printf("started:   %s\n", Time(j.created_ms()).c_str());
    if (j.finished_ms()) printf("ended:     %s\n", Time(j.finished_ms()).c_str());
    if (!j.error().empty()) printf("note:      %s\n", j.error().c_str());
    if (!j.replace_nodes().empty()) printf("moving:    replicas off %s\n", absl::StrJoin(j.replace_nodes(), ",").c_str());
    if (j.kind() == ukai::pb::JobRecord::SCRUB) {
      printf("checked:   %lu pages, %lu failing their checksum, %lu differing between replicas\n",
             static_cast<unsigned long>(j.pages_checked()), static_cast<unsigned long>(j.bad_pages()),
             static_cast<unsigned long>(j.mismatched_pages()));
      for (const auto& f : j.findings()) printf("  %s\n", f.c_str());
    }
  });
  auto* jcancel = job->add_subcommand(
      "cancel", "stop a job at its next batch: blocks already moved stay moved, the rest stay "
                "where they were, the disk's placement policy goes back to what it was");
  jcancel->add_option("id", job_id, "job id")->required();
  jcancel->callback([&] {
    ukai::pb::JobRequest req;
    req.set_id(job_id);
    auto j = Call<ukai::pb::JobRequest, ukai::pb::JobRecord>(g, &Admin::Stub::CancelJob, req);
    if (g.json) return PrintJson(JobJson(j));
    printf("job %s: cancel requested (`ukaictl job wait %s` to see it end)\n", j.id().c_str(), j.id().c_str());
  });

  // ---- snapshots and clones
  std::string ref_text, new_name;
  auto snap_ref = [&](ukai::SnapPart part) {
    auto r = ukai::ParseDiskRef(ref_text, part);
    if (!r.ok()) Die(std::string(r.status().message()));
    return *r;
  };
  auto* snap = app.add_subcommand(
      "snap", "snapshots: point-in-time, read-only views of a disk, made in constant time while "
              "it is written (crash-consistent: every write acknowledged before is in, none "
              "sent after). They show under a mount as <disk>@<snapshot>");
  snap->require_subcommand(1);
  auto* screate = snap->add_subcommand("create", "take a snapshot of a disk, in use or not");
  screate->add_option("ref", ref_text, "DISK@SNAPSHOT (names: 1-64 of A-Z a-z 0-9 . _ -)")->required();
  screate->callback([&] {
    auto r = snap_ref(ukai::SnapPart::kRequired);
    ukai::pb::SnapshotRequest req;
    req.set_disk(r.disk);
    req.set_snapshot(r.snapshot);
    auto resp = Call<ukai::pb::SnapshotRequest, ukai::pb::CreateSnapshotResponse>(
        g, &Admin::Stub::CreateSnapshot, req);
    const auto& sn = resp.snapshot().snapshot();
    if (!resp.unfenced().empty()) {
      fprintf(stderr, "ukaictl: warning: nodes %s did not confirm the snapshot in time; a write "
                      "already on its way to them may still be in it\n",
              absl::StrJoin(resp.unfenced(), ",").c_str());
    }
    if (g.json) {
      return PrintJson(json{{"disk", r.disk}, {"snapshot", sn.name()}, {"generation", sn.generation()},
                            {"size", sn.size()}, {"created_ms", sn.created_ms()},
                            {"unfenced", std::vector<std::string>(resp.unfenced().begin(), resp.unfenced().end())}});
    }
    printf("created snapshot %s@%s (%s)\n", r.disk.c_str(), sn.name().c_str(),
           ukai::FormatSize(sn.size()).c_str());
  });
  auto* slist = snap->add_subcommand(
      "list", "list a disk's snapshots: name, time, generation, size, exclusive bytes (what "
              "deleting it would free, per replica, in whole blocks) and clones");
  slist->add_option("disk", ref_text, "disk name")->required();
  slist->callback([&] {
    auto r = snap_ref(ukai::SnapPart::kForbidden);
    ukai::pb::DiskRequest req;
    req.set_name(r.disk);
    auto resp = Call<ukai::pb::DiskRequest, ukai::pb::ListSnapshotsResponse>(
        g, &Admin::Stub::ListSnapshots, req);
    if (g.json) {
      json arr = json::array();
      for (const auto& i : resp.snapshots()) {
        arr.push_back(json{{"name", i.snapshot().name()},
                           {"generation", i.snapshot().generation()},
                           {"size", i.snapshot().size()},
                           {"created_ms", i.snapshot().created_ms()},
                           {"exclusive_bytes", i.exclusive_bytes()},
                           {"clones", std::vector<std::string>(i.clones().begin(), i.clones().end())}});
      }
      return PrintJson(arr);
    }
    printf("%-24s %-19s %6s %10s %10s  %s\n", "NAME", "CREATED", "GEN", "SIZE", "EXCLUSIVE", "CLONES");
    for (const auto& i : resp.snapshots()) {
      printf("%-24s %-19s %6lu %10s %10s  %s\n", i.snapshot().name().c_str(),
             Time(i.snapshot().created_ms()).c_str(),
             static_cast<unsigned long>(i.snapshot().generation()),
             ukai::FormatSize(i.snapshot().size()).c_str(),
             ukai::FormatSize(i.exclusive_bytes()).c_str(),
             i.clones().empty() ? "-" : absl::StrJoin(i.clones(), ",").c_str());
    }
  });
  auto* sdelete = snap->add_subcommand(
      "delete", "delete a snapshot; the nodes free the space only it used. Refused while "
                "disks cloned from it depend on it (flatten or delete them first)");
  sdelete->add_option("ref", ref_text, "DISK@SNAPSHOT")->required();
  sdelete->callback([&] {
    auto r = snap_ref(ukai::SnapPart::kRequired);
    ukai::pb::SnapshotRequest req;
    req.set_disk(r.disk);
    req.set_snapshot(r.snapshot);
    Call<ukai::pb::SnapshotRequest, ukai::pb::SnapshotInfo>(g, &Admin::Stub::DeleteSnapshot, req);
    if (g.json) return PrintJson(json{{"deleted", r.disk + "@" + r.snapshot}});
    printf("deleted snapshot %s@%s\n", r.disk.c_str(), r.snapshot.c_str());
  });

  auto* srollback = snap->add_subcommand(
      "rollback", "make the disk read as the snapshot again: each block changed since is copied "
                  "back on its nodes (other snapshots stay as they are). Refused while the disk "
                  "is open for writing unless --force; run it again to finish one that was "
                  "interrupted");
  srollback->add_option("ref", ref_text, "DISK@SNAPSHOT")->required();
  srollback->add_flag("--force", force, "even while a host writes it: that host's writes then fail (EIO)");
  srollback->callback([&] {
    auto r = snap_ref(ukai::SnapPart::kRequired);
    ukai::pb::SnapshotRequest req;
    req.set_disk(r.disk);
    req.set_snapshot(r.snapshot);
    req.set_force(force);
    auto info = Call<ukai::pb::SnapshotRequest, ukai::pb::DiskInfo>(g, &Admin::Stub::Rollback, req);
    if (g.json) return PrintJson(SpecJson(info.spec()));
    printf("disk %s rolled back to %s@%s\n", r.disk.c_str(), r.disk.c_str(), r.snapshot.c_str());
  });

  auto* clone = app.add_subcommand(
      "clone", "make a new disk from a snapshot, instantly: it is writable at once, reads what "
               "it has not written from the snapshot, and copies a block from it on its first "
               "write. The snapshot cannot be deleted while the clone depends on it (see flatten)");
  clone->add_option("ref", ref_text, "DISK@SNAPSHOT to clone")->required();
  clone->add_option("name", new_name, "the new disk's name")->required();
  auto* csites = clone->add_option("--sites", sites, "sites for the clone's own data (default: the parent's)");
  clone->add_option("--nodes", nodes, "nodes for the clone's own data")->excludes(csites);
  clone->add_option("--replicas", replicas, "copies of every block (default: the parent's)");
  clone->callback([&] {
    auto r = snap_ref(ukai::SnapPart::kRequired);
    ukai::pb::CloneRequest req;
    req.set_parent(r.disk);
    req.set_snapshot(r.snapshot);
    req.set_name(new_name);
    if (replicas < 0) Die("--replicas must be positive");
    req.mutable_placement()->set_replicas(static_cast<uint32_t>(replicas));
    for (auto& s : ListArg(sites)) req.mutable_placement()->add_sites(s);
    for (auto& n : ListArg(nodes)) req.mutable_placement()->add_nodes(n);
    auto info = Call<ukai::pb::CloneRequest, ukai::pb::DiskInfo>(g, &Admin::Stub::Clone, req);
    if (g.json) return PrintJson(SpecJson(info.spec()));
    printf("created disk %s: a clone of %s@%s, %s, %s\n", info.spec().name().c_str(),
           r.disk.c_str(), r.snapshot.c_str(), ukai::FormatSize(info.spec().size()).c_str(),
           PlacementText(info.spec().placement()).c_str());
  });

  // ---- data movers (libukai, no mount)
  std::string file, since;
  ukai::ctl::TransferOptions topts;
  auto transfer_opts = [&] {
    if (g.parallel < 1 || g.parallel > 256) Die("--parallel must be between 1 and 256");
    topts.parallel = g.parallel;
    topts.progress = !g.json;
    return topts;
  };
  auto* backup = app.add_subcommand(
      "backup", "write a snapshot to a file from the nearest replicas, with no mount and no "
                "effect on the VM: all its data, or with --since only the blocks changed since "
                "an older snapshot (an incremental). Each block carries a checksum");
  backup->add_option("ref", ref_text, "DISK@SNAPSHOT to back up")->required();
  backup->add_option("file", file, "the backup file to write (replaced when complete)")->required();
  backup->add_option("--since", since, "an older snapshot of the same disk: write only what changed");
  backup->callback([&] {
    auto r = snap_ref(ukai::SnapPart::kRequired);
    if (!since.empty() && !ukai::ValidateSnapshotName(since).ok()) Die("invalid --since snapshot name '" + since + "'");
    auto cluster = ConnectData(g);
    PrintTransfer(g, absl::StrFormat("backed up %s@%s%s to %s", r.disk, r.snapshot,
                                     since.empty() ? "" : " (since " + since + ")", file),
                  ukai::ctl::Backup(cluster.get(), r.disk, r.snapshot, since, file, transfer_opts()));
  });
  auto* restore = app.add_subcommand(
      "restore", "restore a backup: a full one into a new disk, an incremental one onto the disk "
                 "its base was restored to (restore a chain in order). The file is checked whole "
                 "first: a truncated or corrupt one, or one for another base, changes nothing. "
                 "Each restore ends with a snapshot named as the backup's");
  restore->add_option("file", file, "backup file")->required();
  restore->add_option("disk", new_name, "the disk to restore into")->required();
  restore->callback([&] {
    auto cluster = ConnectData(g);
    PrintTransfer(g, absl::StrFormat("restored %s into %s", file, new_name),
                  ukai::ctl::Restore(cluster.get(), MakeAdminOps(g), file, new_name, transfer_opts()));
  });
  auto* exp = app.add_subcommand(
      "export", "write a disk or a snapshot as a sparse raw image (leaving UKAI is one command)");
  exp->add_option("ref", ref_text, "DISK or DISK@SNAPSHOT")->required();
  exp->add_option("file", file, "the raw image to write")->required();
  exp->callback([&] {
    auto r = snap_ref(ukai::SnapPart::kOptional);
    auto cluster = ConnectData(g);
    PrintTransfer(g, absl::StrFormat("exported %s to %s", ref_text, file),
                  ukai::ctl::Export(cluster.get(), ref_text, file, transfer_opts()));
  });
  auto* imp = app.add_subcommand(
      "import", "make a new thin disk from a raw image or block device (blocks of zeros are not "
                "stored; holes are not even read)");
  imp->add_option("file", file, "raw image")->required();
  imp->add_option("disk", new_name, "the new disk's name")->required();
  imp->add_option("--replicas", replicas, "copies of every block (default 2)");
  auto* isites = imp->add_option("--sites", sites, "sites to place replicas in (a,b)");
  imp->add_option("--nodes", nodes, "nodes to place replicas on")->excludes(isites);
  imp->add_option("--block-size", block_size_text, "placement unit (default 4M)");
  imp->callback([&] {
    ukai::pb::CreateDiskRequest req;
    req.set_name(new_name);
    if (replicas < 0) Die("--replicas must be positive");
    req.mutable_placement()->set_replicas(static_cast<uint32_t>(replicas));
    for (auto& s : ListArg(sites)) req.mutable_placement()->add_sites(s);
    for (auto& n : ListArg(nodes)) req.mutable_placement()->add_nodes(n);
    if (!block_size_text.empty()) req.set_block_size(static_cast<uint32_t>(SizeArg(block_size_text)));
    auto cluster = ConnectData(g);
    PrintTransfer(g, absl::StrFormat("imported %s as %s", file, new_name),
                  ukai::ctl::Import(cluster.get(), MakeAdminOps(g), file, req, transfer_opts()));
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    fprintf(stderr, "ukaictl: %s (see ukaictl --help)\n", e.what());
    return 2;
  }
  return 0;
}
