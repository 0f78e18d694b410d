// ukaictl disk create|list|info|resize|policy|delete|repair.
#include <CLI/CLI.hpp>

#include "common/status.h"
#include "common/units.h"
#include "ctl/args.h"
#include "ctl/format.h"
#include "ctl/jobs.h"
#include "ctl/ukaictl.h"

namespace ukai::ctl {
namespace {

struct DiskArgs {
  std::string name, size, block_size, from_site, bandwidth;
  PlacementArgs placement;
  PolicyArgs policy;
  bool force = false, wait = false;
};

// A disk spec, as --json or in one line.
absl::Status ShowSpec(const Cli& cli, const pb::DiskSpec& d, const std::string& line) {
  if (cli.g.json) {
    PrintJson(SpecJson(d));
  } else {
    printf("%s\n", line.c_str());
  }
  return absl::OkStatus();
}

absl::Status Create(const Cli& cli, const DiskArgs& a) {
  pb::CreateDiskRequest req;
  req.set_name(a.name);
  ASSIGN_OR_RETURN(uint64_t size, SizeArg(a.size));
  req.set_size(size);
  RETURN_IF_ERROR(FillBlockSize(a.block_size, &req));
  RETURN_IF_ERROR(FillPlacement(a.placement, req.mutable_placement()));
  RETURN_IF_ERROR(ApplyPolicy(a.policy, req.mutable_failure()));
  ASSIGN_OR_RETURN(auto info,
                   (Call<pb::CreateDiskRequest, pb::DiskInfo>(cli, &AdminStub::CreateDisk, req)));
  const pb::DiskSpec& d = info.spec();
  return ShowSpec(cli, d,
                  "created disk " + d.name() + ": " + FormatSize(d.size()) + ", " +
                      PlacementText(d.placement()));
}

absl::Status List(const Cli& cli) {
  ASSIGN_OR_RETURN(auto resp, (Call<pb::ListDisksRequest, pb::ListDisksResponse>(
                                  cli, &AdminStub::ListDisks, pb::ListDisksRequest())));
  if (cli.g.json) {
    json arr = json::array();
    for (const auto& d : resp.disks()) arr.push_back(SpecJson(d));
    PrintJson(arr);
    return absl::OkStatus();
  }
  printf("%-24s %6s %12s %10s  %s\n", "NAME", "ID", "SIZE", "BLOCK", "PLACEMENT");
  for (const auto& d : resp.disks()) {
    printf("%-24s %6lu %12s %10s  %s\n", d.name().c_str(), static_cast<unsigned long>(d.id()),
           FormatSize(d.size()).c_str(), FormatSize(d.block_size()).c_str(),
           PlacementText(d.placement()).c_str());
  }
  return absl::OkStatus();
}

absl::Status Info(const Cli& cli, const DiskArgs& a) {
  pb::DiskRequest req;
  req.set_name(a.name);
  req.set_from_site(a.from_site);
  ASSIGN_OR_RETURN(auto info, (Call<pb::DiskRequest, pb::DiskInfo>(cli, &AdminStub::GetDisk, req)));
  if (cli.g.json) {
    PrintJson(InfoJson(info));
  } else {
    PrintInfoText(info);
  }
  return absl::OkStatus();
}

absl::Status Resize(const Cli& cli, const DiskArgs& a) {
  pb::ResizeDiskRequest req;
  req.set_name(a.name);
  ASSIGN_OR_RETURN(uint64_t size, SizeArg(a.size));
  req.set_size(size);
  ASSIGN_OR_RETURN(auto r,
                   (Call<pb::ResizeDiskRequest, pb::DiskInfo>(cli, &AdminStub::ResizeDisk, req)));
  return ShowSpec(cli, r.spec(),
                  "disk " + r.spec().name() + " is now " + FormatSize(r.spec().size()));
}

absl::Status Policy(const Cli& cli, const DiskArgs& a) {
  pb::DiskRequest get;
  get.set_name(a.name);
  ASSIGN_OR_RETURN(auto cur, (Call<pb::DiskRequest, pb::DiskInfo>(cli, &AdminStub::GetDisk, get)));
  pb::SetPolicyRequest req;
  req.set_name(a.name);
  *req.mutable_failure() = cur.spec().failure();
  RETURN_IF_ERROR(ApplyPolicy(a.policy, req.mutable_failure()));
  ASSIGN_OR_RETURN(auto r,
                   (Call<pb::SetPolicyRequest, pb::DiskInfo>(cli, &AdminStub::SetPolicy, req)));
  return ShowSpec(cli, r.spec(),
                  "disk " + r.spec().name() + ": on replica failure, " + PolicyText(r.spec()));
}

absl::Status Delete(const Cli& cli, const DiskArgs& a) {
  pb::DiskRequest req;
  req.set_name(a.name);
  req.set_force(a.force);
  ASSIGN_OR_RETURN(auto r, (Call<pb::DiskRequest, pb::DiskInfo>(cli, &AdminStub::DeleteDisk, req)));
  if (cli.g.json) {
    PrintJson(json{{"deleted", r.spec().name()}, {"id", r.spec().id()}});
  } else {
    printf("deleted disk %s\n", r.spec().name().c_str());
  }
  return absl::OkStatus();
}

void AddCreate(CLI::App* disk, Cli* cli, std::shared_ptr<DiskArgs> a) {
  auto* create = disk->add_subcommand("create", "create a thin-provisioned disk");
  create->add_option("name", a->name, "disk name: 1-64 of A-Z a-z 0-9 . _ -")->required();
  create->add_option("--size", a->size, "size, a multiple of 512 bytes (e.g. 20G)")->required();
  AddPlacementFlags(create, &a->placement, "sites to place replicas in, in order (a,b)",
                    "explicit nodes to place replicas on (n1,n2)",
                    "copies of every block (default 2, or the number of --nodes)");
  create->add_option("--block-size", a->block_size, "placement unit, a power of two (default 4M)");
  AddPolicyFlags(create, &a->policy);
  OnRun(create, cli, [cli, a] { return Create(*cli, *a); });
}

void AddChanges(CLI::App* disk, Cli* cli, std::shared_ptr<DiskArgs> a) {
  auto* resize = disk->add_subcommand("resize", "grow a disk online (mounts see the new size)");
  resize->add_option("name", a->name, "disk name")->required();
  resize->add_option("--size", a->size, "new size, not smaller than the current one")->required();
  OnRun(resize, cli, [cli, a] { return Resize(*cli, *a); });
  auto* policy = disk->add_subcommand(
      "policy",
      "change what a disk's I/O does when replicas fail; hosts that have it open "
      "follow at once. Flags not given keep their value");
  policy->add_option("name", a->name, "disk name")->required();
  AddPolicyFlags(policy, &a->policy);
  OnRun(policy, cli, [cli, a] { return Policy(*cli, *a); });
  auto* del = disk->add_subcommand("delete", "delete a disk and its data");
  del->add_option("name", a->name, "disk name")->required();
  del->add_flag("--force", a->force, "delete even while a host has it open for writing");
  OnRun(del, cli, [cli, a] { return Delete(*cli, *a); });
}

void AddRepair(CLI::App* disk, Cli* cli, std::shared_ptr<DiskArgs> a) {
  auto* repair = disk->add_subcommand(
      "repair",
      "bring the disk's replicas back to full health: every replica on a node that is up but "
      "missed writes (marked stale) is copied again from a clean one, only the blocks it "
      "missed, and replicas on draining nodes are rebuilt elsewhere. Nodes start this by "
      "themselves (ukai-node --repair-interval, --rereplicate-after); this starts it now. "
      "Prints the job id");
  repair->add_option("name", a->name, "disk name")->required();
  repair->add_option("--bandwidth", a->bandwidth,
                     "copy rate limit for this job, bytes/s (e.g. 200M; default: none beyond "
                     "each node's --copy-bandwidth)");
  repair->add_flag("--wait", a->wait, "wait for the job, with a progress bar (as `job wait`)");
  OnRun(repair, cli, [cli, a] {
    return StartDiskJob(*cli, &AdminStub::Repair, a->name, a->bandwidth, a->wait);
  });
}

}  // namespace

void AddDiskCommands(CLI::App* app, Cli* cli) {
  auto a = std::make_shared<DiskArgs>();
  auto* disk = app->add_subcommand("disk", "virtual disks");
  disk->require_subcommand(1);
  AddCreate(disk, cli, a);
  OnRun(disk->add_subcommand("list", "list disks"), cli, [cli] { return List(*cli); });
  auto* info = disk->add_subcommand("info", "show a disk: spec, placement, space, writer");
  info->add_option("name", a->name, "disk name")->required();
  info->add_option("--from", a->from_site,
                   "also show which replicas a frontend in this site reads, and their "
                   "round-trip time as that site's frontends measure it");
  OnRun(info, cli, [cli, a] { return Info(*cli, *a); });
  AddChanges(disk, cli, a);
  AddRepair(disk, cli, a);
}

}  // namespace ukai::ctl
