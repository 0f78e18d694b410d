// ukaictl: the operator's command-line tool, a thin client of the Admin gRPC
// service every ukai-node serves. Exit 0 on success; on failure one line
// "ukaictl: <what went wrong>" on stderr and exit 1 (2 for usage errors).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "common/units.h"
#include "ukai.grpc.pb.h"

namespace {

using nlohmann::json;
using ukai::pb::Admin;

struct Globals {
  std::string admin;
  bool json = false;
  int timeout_s = 60;
};

[[noreturn]] void Die(const std::string& msg) {
  fprintf(stderr, "ukaictl: %s\n", msg.c_str());
  exit(1);
}

// The first admin address (of a comma-separated list) that accepts a connection.
std::unique_ptr<Admin::Stub> Connect(const Globals& g) {
  std::string list = g.admin;
  if (list.empty()) {
    const char* env = getenv("UKAI_ADMIN");
    if (env) list = env;
  }
  if (list.empty()) Die("no admin address: set UKAI_ADMIN=host:port or pass --admin");
  for (absl::string_view addr : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    auto ch = ukai::MakeChannel(std::string(addr));
    if (ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(3))) {
      return Admin::NewStub(ch);
    }
  }
  Die("cannot reach the admin service at " + list + " (is a ukai-node running?)");
}

template <typename Req, typename Resp, typename Fn>
Resp Call(const Globals& g, Fn method, const Req& req) {
  auto stub = Connect(g);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(g.timeout_s));
  Resp resp;
  grpc::Status s = ((*stub).*method)(&ctx, req, &resp);
  if (!s.ok()) Die(s.error_message());
  return resp;
}

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
              {"state", d.state() == ukai::pb::DiskSpec::READY ? "ready" : "deleting"}};
}

void PrintJson(const json& j) { printf("%s\n", j.dump(2).c_str()); }

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
                     {"error", n.error()}});
    }
    return PrintJson(arr);
  }
  printf("%-10s %-10s %-22s %-5s %12s %12s\n", "ID", "SITE", "ADDRESS", "STATE", "USED", "CAPACITY");
  for (const auto& n : resp.nodes()) {
    printf("%-10s %-10s %-22s %-5s %12s %12s\n", n.info().id().c_str(), n.info().site().c_str(),
           n.info().address().c_str(), n.up() ? "up" : "down",
           n.up() ? ukai::FormatSize(n.used_bytes()).c_str() : "-",
           n.info().capacity_bytes() ? ukai::FormatSize(n.info().capacity_bytes()).c_str() : "-");
  }
}

void PrintInfo(const Globals& g, const ukai::pb::DiskInfo& info) {
  const auto& d = info.spec();
  if (g.json) {
    json j = SpecJson(d);
    j["allocated_bytes"] = info.allocated_bytes();
    j["allocated_chunks"] = info.allocated_chunks();
    j["stale_replica_blocks"] = info.stale_blocks();
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
    return PrintJson(j);
  }
  printf("name:        %s\n", d.name().c_str());
  printf("id:          %lu\n", static_cast<unsigned long>(d.id()));
  printf("size:        %s (%lu bytes)\n", ukai::FormatSize(d.size()).c_str(), static_cast<unsigned long>(d.size()));
  printf("block size:  %s\n", ukai::FormatSize(d.block_size()).c_str());
  printf("placement:   %s\n", PlacementText(d.placement()).c_str());
  printf("created:     %s\n", Time(d.created_ms()).c_str());
  printf("layout:      version %lu\n", static_cast<unsigned long>(d.layout_version()));
  if (d.state() != ukai::pb::DiskSpec::READY) printf("state:       deleting\n");
  if (!info.has_writer() && info.open_by().empty() && info.allocated_bytes() == 0 &&
      info.allocated_chunks() == 0) {
    return;  // a fresh reply of create/resize carries only the spec
  }
  printf("allocated:   %s stored over all replicas\n", ukai::FormatSize(info.allocated_bytes()).c_str());
  for (const auto& [n, b] : info.node_bytes()) {
    printf("  on %-8s %s\n", n.c_str(), ukai::FormatSize(b).c_str());
  }
  if (info.stale_blocks()) {
    printf("degraded:    %lu stale block replica(s)\n", static_cast<unsigned long>(info.stale_blocks()));
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
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  CLI::App app{"ukaictl: manage UKAI virtual disks.\n"
               "Talks to the admin service of any ukai-node (UKAI_ADMIN=host:port[,host:port] or "
               "--admin). Sizes take K/M/G/T/P suffixes (powers of 1024)."};
  app.require_subcommand(1);
  app.footer(R"(Examples:
  ukaictl node list
  ukaictl disk create vm1 --size 20G --replicas 2 --sites site-a,site-b
  ukaictl disk info vm1 --json
  ukaictl disk resize vm1 --size 40G      (online; mounts see the new size)
  ukaictl disk delete vm1 [--force]      (refused while open for writing)

Exit status: 0 on success; 1 on failure, with one line "ukaictl: <reason>" on
stderr; 2 on a usage error. With --json, results are printed as JSON on stdout.)");
  app.add_option("--admin", g.admin, "admin address(es), comma-separated; default $UKAI_ADMIN");
  app.add_flag("--json", g.json, "print machine-readable JSON");
  app.add_option("--timeout", g.timeout_s, "seconds to wait for the admin service")
      ->capture_default_str();

  auto* node = app.add_subcommand("node", "storage nodes");
  node->require_subcommand(1);
  node->add_subcommand("list", "list nodes: id, site, address, up/down, space used")
      ->callback([&] { NodeList(g); });

  auto* disk = app.add_subcommand("disk", "virtual disks");
  disk->require_subcommand(1);

  std::string name, size_text, sites, nodes, block_size_text;
  int replicas = 0;
  bool force = false;
  auto* create = disk->add_subcommand("create", "create a thin-provisioned disk");
  create->add_option("name", name, "disk name: 1-64 of A-Z a-z 0-9 . _ -")->required();
  create->add_option("--size", size_text, "size, a multiple of 512 bytes (e.g. 20G)")->required();
  create->add_option("--replicas", replicas, "copies of every block (default 2, or the number of --nodes)");
  auto* sites_opt = create->add_option("--sites", sites, "sites to place replicas in, in order (a,b)");
  create->add_option("--nodes", nodes, "explicit nodes to place replicas on (n1,n2)")->excludes(sites_opt);
  create->add_option("--block-size", block_size_text, "placement unit, a power of two (default 4M)");
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

  auto* info = disk->add_subcommand("info", "show a disk: spec, placement, space, writer");
  info->add_option("name", name, "disk name")->required();
  info->callback([&] {
    ukai::pb::DiskRequest req;
    req.set_name(name);
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    fprintf(stderr, "ukaictl: %s (see ukaictl --help)\n", e.what());
    return 2;
  }
  return 0;
}
