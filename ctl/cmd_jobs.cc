// ukaictl relocate, scrub, flatten (start a job) and job list|wait|info|cancel.
#include <CLI/CLI.hpp>

#include "common/status.h"
#include "ctl/jobs.h"
#include "ctl/ukaictl.h"

namespace ukai::ctl {
namespace {

struct JobArgs {
  std::string name, sites, nodes, bandwidth, id;
  bool wait = false;
};

absl::Status Relocate(const Cli& cli, const JobArgs& a) {
  pb::RelocateRequest req;
  req.set_name(a.name);
  for (auto& s : ListArg(a.sites)) req.add_sites(s);
  for (auto& n : ListArg(a.nodes)) req.add_nodes(n);
  if (req.sites().empty() && req.nodes().empty()) {
    return absl::InvalidArgumentError("say where to: --sites or --nodes");
  }
  if (!a.bandwidth.empty()) {
    ASSIGN_OR_RETURN(uint64_t bps, SizeArg(a.bandwidth));
    req.set_bandwidth_bps(bps);
  }
  ASSIGN_OR_RETURN(auto j,
                   (Call<pb::RelocateRequest, pb::JobRecord>(cli, &AdminStub::Relocate, req)));
  return ShowStartedJob(cli, j, a.wait);
}

absl::Status Info(const Cli& cli, const JobArgs& a) {
  pb::JobRequest req;
  req.set_id(a.id);
  ASSIGN_OR_RETURN(auto j, (Call<pb::JobRequest, pb::JobRecord>(cli, &AdminStub::GetJob, req)));
  if (cli.g.json) {
    PrintJson(JobJson(j));
  } else {
    PrintJobText(j);
  }
  return absl::OkStatus();
}

absl::Status Cancel(const Cli& cli, const JobArgs& a) {
  pb::JobRequest req;
  req.set_id(a.id);
  ASSIGN_OR_RETURN(auto j, (Call<pb::JobRequest, pb::JobRecord>(cli, &AdminStub::CancelJob, req)));
  if (cli.g.json) {
    PrintJson(JobJson(j));
  } else {
    printf("job %s: cancel requested (`ukaictl job wait %s` to see it end)\n", j.id().c_str(),
           j.id().c_str());
  }
  return absl::OkStatus();
}

void AddRelocate(CLI::App* app, Cli* cli, std::shared_ptr<JobArgs> a) {
  auto* relocate = app->add_subcommand(
      "relocate",
      "move a disk's data to other sites or nodes while it is in use: starts a job and prints "
      "its id. Blocks move in batches; each batch's reads switch to the new replicas as soon "
      "as they are copied. Only allocated data is copied.");
  relocate->add_option("name", a->name, "disk name")->required();
  auto* sites = relocate->add_option("--sites", a->sites, "sites to move the replicas to (a,b)");
  relocate
      ->add_option("--nodes", a->nodes,
                   "nodes to move the replicas to (n3,n4), at least as many as replicas")
      ->excludes(sites);
  relocate->add_option("--bandwidth", a->bandwidth,
                       "copy rate limit for this job, bytes/s (e.g. 200M; default: none beyond "
                       "each node's --copy-bandwidth)");
  relocate->add_flag("--wait", a->wait, "wait for the job, with a progress bar (as `job wait`)");
  OnRun(relocate, cli, [cli, a] { return Relocate(*cli, *a); });
}

void AddScrubAndFlatten(CLI::App* app, Cli* cli, std::shared_ptr<JobArgs> a) {
  auto* scrub = app->add_subcommand(
      "scrub",
      "check a disk's data: every stored page of every clean replica is read and checked "
      "against its checksum, and replicas' checksums are compared. A replica with a page that "
      "fails is marked stale (never the last good one) and a repair copies it back. A job: "
      "prints its id; `job info ID` lists what it found");
  scrub->add_option("name", a->name, "disk name")->required();
  scrub->add_option("--bandwidth", a->bandwidth,
                    "read rate limit, bytes/s (e.g. 100M; default: none)");
  scrub->add_flag("--wait", a->wait,
                  "wait for the job, with a progress bar, then print what it found");
  OnRun(scrub, cli,
        [cli, a] { return StartDiskJob(*cli, &AdminStub::Scrub, a->name, a->bandwidth, a->wait); });
  auto* flatten = app->add_subcommand(
      "flatten",
      "make a clone independent of its parent while it is in use: a job copies every block it "
      "still reads from the parent's snapshot into its own objects (at its own placement), "
      "then drops the link; the snapshot can then be deleted. Prints the job id");
  flatten->add_option("name", a->name, "the clone")->required();
  flatten->add_option("--bandwidth", a->bandwidth,
                      "copy rate limit, bytes/s (e.g. 200M; default: none)");
  flatten->add_flag("--wait", a->wait, "wait for the job, with a progress bar (as `job wait`)");
  OnRun(flatten, cli, [cli, a] {
    return StartDiskJob(*cli, &AdminStub::Flatten, a->name, a->bandwidth, a->wait);
  });
}

void AddJob(CLI::App* app, Cli* cli, std::shared_ptr<JobArgs> a) {
  auto* job = app->add_subcommand("job", "long-running jobs (relocation, repair, scrub, flatten)");
  job->require_subcommand(1);
  OnRun(job->add_subcommand("list", "list jobs: id, disk, target, state, progress"), cli,
        [cli] { return JobList(*cli); });
  auto* wait = job->add_subcommand(
      "wait",
      "wait for a job to end, with a progress bar on a terminal (copied / estimated "
      "bytes, rate, ETA); exit 0 if it finished, 1 if it was cancelled or failed");
  wait->add_option("id", a->id, "job id")->required();
  OnRun(wait, cli, [cli, a] { return JobWait(*cli, a->id); });
  auto* info = job->add_subcommand("info", "show one job");
  info->add_option("id", a->id, "job id")->required();
  OnRun(info, cli, [cli, a] { return Info(*cli, *a); });
  auto* cancel = job->add_subcommand(
      "cancel",
      "stop a job at its next batch: blocks already moved stay moved, the rest stay "
      "where they were, the disk's placement policy goes back to what it was");
  cancel->add_option("id", a->id, "job id")->required();
  OnRun(cancel, cli, [cli, a] { return Cancel(*cli, *a); });
}

}  // namespace

void AddJobCommands(CLI::App* app, Cli* cli) {
  auto a = std::make_shared<JobArgs>();
  AddRelocate(app, cli, a);
  AddScrubAndFlatten(app, cli, a);
  AddJob(app, cli, a);
}

}  // namespace ukai::ctl
