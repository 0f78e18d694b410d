// ukaictl snap create|list|delete|rollback, and clone.
#include <CLI/CLI.hpp>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/units.h"
#include "ctl/args.h"
#include "ctl/format.h"
#include "ctl/ukaictl.h"

namespace ukai::ctl {
namespace {

struct SnapArgs {
  std::string ref, new_name;
  PlacementArgs placement;
  bool force = false;
};

absl::StatusOr<pb::SnapshotRequest> SnapRequest(const SnapArgs& a) {
  ASSIGN_OR_RETURN(auto r, ParseDiskRef(a.ref, SnapPart::kRequired));
  pb::SnapshotRequest req;
  req.set_disk(r.disk);
  req.set_snapshot(r.snapshot);
  req.set_force(a.force);
  return req;
}

absl::Status Create(const Cli& cli, const SnapArgs& a) {
  ASSIGN_OR_RETURN(auto req, SnapRequest(a));
  ASSIGN_OR_RETURN(auto resp, (Call<pb::SnapshotRequest, pb::CreateSnapshotResponse>(
                                  cli, &AdminStub::CreateSnapshot, req)));
  const auto& sn = resp.snapshot().snapshot();
  if (!resp.unfenced().empty()) {
    fprintf(stderr,
            "ukaictl: warning: nodes %s did not confirm the snapshot in time; a write already on "
            "its way to them may still be in it\n",
            absl::StrJoin(resp.unfenced(), ",").c_str());
  }
  if (cli.g.json) {
    PrintJson(json{
        {"disk", req.disk()},
        {"snapshot", sn.name()},
        {"generation", sn.generation()},
        {"size", sn.size()},
        {"created_ms", sn.created_ms()},
        {"unfenced", std::vector<std::string>(resp.unfenced().begin(), resp.unfenced().end())}});
    return absl::OkStatus();
  }
  printf("created snapshot %s@%s (%s)\n", req.disk().c_str(), sn.name().c_str(),
         FormatSize(sn.size()).c_str());
  return absl::OkStatus();
}

absl::Status List(const Cli& cli, const SnapArgs& a) {
  ASSIGN_OR_RETURN(auto r, ParseDiskRef(a.ref, SnapPart::kForbidden));
  pb::DiskRequest req;
  req.set_name(r.disk);
  ASSIGN_OR_RETURN(auto resp, (Call<pb::DiskRequest, pb::ListSnapshotsResponse>(
                                  cli, &AdminStub::ListSnapshots, req)));
  if (cli.g.json) {
    json arr = json::array();
    for (const auto& i : resp.snapshots()) {
      arr.push_back(
          json{{"name", i.snapshot().name()},
               {"generation", i.snapshot().generation()},
               {"size", i.snapshot().size()},
               {"created_ms", i.snapshot().created_ms()},
               {"exclusive_bytes", i.exclusive_bytes()},
               {"clones", std::vector<std::string>(i.clones().begin(), i.clones().end())}});
    }
    PrintJson(arr);
    return absl::OkStatus();
  }
  printf("%-24s %-19s %6s %10s %10s  %s\n", "NAME", "CREATED", "GEN", "SIZE", "EXCLUSIVE",
         "CLONES");
  for (const auto& i : resp.snapshots()) {
    printf("%-24s %-19s %6lu %10s %10s  %s\n", i.snapshot().name().c_str(),
           Time(i.snapshot().created_ms()).c_str(),
           static_cast<unsigned long>(i.snapshot().generation()),
           FormatSize(i.snapshot().size()).c_str(), FormatSize(i.exclusive_bytes()).c_str(),
           i.clones().empty() ? "-" : absl::StrJoin(i.clones(), ",").c_str());
  }
  return absl::OkStatus();
}

absl::Status Delete(const Cli& cli, const SnapArgs& a) {
  ASSIGN_OR_RETURN(auto req, SnapRequest(a));
  RETURN_IF_ERROR(
      (Call<pb::SnapshotRequest, pb::SnapshotInfo>(cli, &AdminStub::DeleteSnapshot, req).status()));
  const std::string ref = req.disk() + "@" + req.snapshot();
  if (cli.g.json) {
    PrintJson(json{{"deleted", ref}});
  } else {
    printf("deleted snapshot %s\n", ref.c_str());
  }
  return absl::OkStatus();
}

absl::Status Rollback(const Cli& cli, const SnapArgs& a) {
  ASSIGN_OR_RETURN(auto req, SnapRequest(a));
  ASSIGN_OR_RETURN(auto info,
                   (Call<pb::SnapshotRequest, pb::DiskInfo>(cli, &AdminStub::Rollback, req)));
  if (cli.g.json) {
    PrintJson(SpecJson(info.spec()));
  } else {
    printf("disk %s rolled back to %s@%s\n", req.disk().c_str(), req.disk().c_str(),
           req.snapshot().c_str());
  }
  return absl::OkStatus();
}

absl::Status Clone(const Cli& cli, const SnapArgs& a) {
  ASSIGN_OR_RETURN(auto r, ParseDiskRef(a.ref, SnapPart::kRequired));
  pb::CloneRequest req;
  req.set_parent(r.disk);
  req.set_snapshot(r.snapshot);
  req.set_name(a.new_name);
  RETURN_IF_ERROR(FillPlacement(a.placement, req.mutable_placement()));
  ASSIGN_OR_RETURN(auto info, (Call<pb::CloneRequest, pb::DiskInfo>(cli, &AdminStub::Clone, req)));
  const pb::DiskSpec& d = info.spec();
  if (cli.g.json) {
    PrintJson(SpecJson(d));
  } else {
    printf("created disk %s: a clone of %s@%s, %s, %s\n", d.name().c_str(), r.disk.c_str(),
           r.snapshot.c_str(), FormatSize(d.size()).c_str(), PlacementText(d.placement()).c_str());
  }
  return absl::OkStatus();
}

void AddSnapChanges(CLI::App* snap, Cli* cli, std::shared_ptr<SnapArgs> a) {
  auto* del = snap->add_subcommand(
      "delete",
      "delete a snapshot; the nodes free the space only it used. Refused while "
      "disks cloned from it depend on it (flatten or delete them first)");
  del->add_option("ref", a->ref, "DISK@SNAPSHOT")->required();
  OnRun(del, cli, [cli, a] { return Delete(*cli, *a); });
  auto* rollback = snap->add_subcommand(
      "rollback",
      "make the disk read as the snapshot again: each block changed since is copied "
      "back on its nodes (other snapshots stay as they are). Refused while the disk "
      "is open for writing unless --force; run it again to finish one that was "
      "interrupted");
  rollback->add_option("ref", a->ref, "DISK@SNAPSHOT")->required();
  rollback->add_flag("--force", a->force,
                     "even while a host writes it: that host's writes then fail (EIO)");
  OnRun(rollback, cli, [cli, a] { return Rollback(*cli, *a); });
}

void AddClone(CLI::App* app, Cli* cli, std::shared_ptr<SnapArgs> a) {
  auto* clone = app->add_subcommand(
      "clone",
      "make a new disk from a snapshot, instantly: it is writable at once, reads what "
      "it has not written from the snapshot, and copies a block from it on its first "
      "write. The snapshot cannot be deleted while the clone depends on it (see flatten)");
  clone->add_option("ref", a->ref, "DISK@SNAPSHOT to clone")->required();
  clone->add_option("name", a->new_name, "the new disk's name")->required();
  AddPlacementFlags(clone, &a->placement, "sites for the clone's own data (default: the parent's)",
                    "nodes for the clone's own data",
                    "copies of every block (default: the parent's)");
  OnRun(clone, cli, [cli, a] { return Clone(*cli, *a); });
}

}  // namespace

void AddSnapCommands(CLI::App* app, Cli* cli) {
  auto a = std::make_shared<SnapArgs>();
  auto* snap = app->add_subcommand(
      "snap",
      "snapshots: point-in-time, read-only views of a disk, made in constant time while "
      "it is written (crash-consistent: every write acknowledged before is in, none "
      "sent after). They show under a mount as <disk>@<snapshot>");
  snap->require_subcommand(1);
  auto* create = snap->add_subcommand("create", "take a snapshot of a disk, in use or not");
  create->add_option("ref", a->ref, "DISK@SNAPSHOT (names: 1-64 of A-Z a-z 0-9 . _ -)")->required();
  OnRun(create, cli, [cli, a] { return Create(*cli, *a); });
  auto* list = snap->add_subcommand(
      "list",
      "list a disk's snapshots: name, time, generation, size, exclusive bytes (what "
      "deleting it would free, per replica, in whole blocks) and clones");
  list->add_option("disk", a->ref, "disk name")->required();
  OnRun(list, cli, [cli, a] { return List(*cli, *a); });
  AddSnapChanges(snap, cli, a);
  AddClone(app, cli, a);
}

}  // namespace ukai::ctl
