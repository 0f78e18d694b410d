// ukaictl backup, restore, export, import: data moved by ukaictl itself
// through libukai (ctl/transfer.h), with no mount.
#include <CLI/CLI.hpp>

#include "absl/strings/str_format.h"
#include "common/status.h"
#include "common/units.h"
#include "ctl/args.h"
#include "ctl/ukaictl.h"

namespace ukai::ctl {
namespace {

struct TransferArgs {
  std::string ref, file, since, disk, block_size;
  PlacementArgs placement;
};

absl::StatusOr<TransferOptions> Options(const Globals& g) {
  if (g.parallel < 1 || g.parallel > 256) {
    return absl::InvalidArgumentError("--parallel must be between 1 and 256");
  }
  TransferOptions o;
  o.parallel = g.parallel;
  o.progress = !g.json;
  return o;
}

absl::Status RunBackup(const Cli& cli, const TransferArgs& a) {
  ASSIGN_OR_RETURN(auto r, ParseDiskRef(a.ref, SnapPart::kRequired));
  if (!a.since.empty() && !ValidateSnapshotName(a.since).ok()) {
    return absl::InvalidArgumentError("invalid --since snapshot name '" + a.since + "'");
  }
  ASSIGN_OR_RETURN(auto opts, Options(cli.g));
  ASSIGN_OR_RETURN(auto cluster, ConnectData(cli.g));
  return PrintTransfer(cli.g,
                       absl::StrFormat("backed up %s@%s%s to %s", r.disk, r.snapshot,
                                       a.since.empty() ? "" : " (since " + a.since + ")", a.file),
                       Backup(cluster.get(), r.disk, r.snapshot, a.since, a.file, opts));
}

absl::Status RunRestore(const Cli& cli, const TransferArgs& a) {
  ASSIGN_OR_RETURN(auto opts, Options(cli.g));
  ASSIGN_OR_RETURN(auto cluster, ConnectData(cli.g));
  return PrintTransfer(cli.g, absl::StrFormat("restored %s into %s", a.file, a.disk),
                       Restore(cluster.get(), MakeAdminOps(cli), a.file, a.disk, opts));
}

absl::Status RunExport(const Cli& cli, const TransferArgs& a) {
  RETURN_IF_ERROR(ParseDiskRef(a.ref, SnapPart::kOptional).status());
  ASSIGN_OR_RETURN(auto opts, Options(cli.g));
  ASSIGN_OR_RETURN(auto cluster, ConnectData(cli.g));
  return PrintTransfer(cli.g, absl::StrFormat("exported %s to %s", a.ref, a.file),
                       Export(cluster.get(), a.ref, a.file, opts));
}

absl::Status RunImport(const Cli& cli, const TransferArgs& a) {
  pb::CreateDiskRequest req;
  req.set_name(a.disk);
  RETURN_IF_ERROR(FillPlacement(a.placement, req.mutable_placement()));
  RETURN_IF_ERROR(FillBlockSize(a.block_size, &req));
  ASSIGN_OR_RETURN(auto opts, Options(cli.g));
  ASSIGN_OR_RETURN(auto cluster, ConnectData(cli.g));
  return PrintTransfer(cli.g, absl::StrFormat("imported %s as %s", a.file, a.disk),
                       Import(cluster.get(), MakeAdminOps(cli), a.file, req, opts));
}

void AddBackupRestore(CLI::App* app, Cli* cli, std::shared_ptr<TransferArgs> a) {
  auto* backup = app->add_subcommand(
      "backup",
      "write a snapshot to a file from the nearest replicas, with no mount and no "
      "effect on the VM: all its data, or with --since only the blocks changed since "
      "an older snapshot (an incremental). Each block carries a checksum");
  backup->add_option("ref", a->ref, "DISK@SNAPSHOT to back up")->required();
  backup->add_option("file", a->file, "the backup file to write (replaced when complete)")
      ->required();
  backup->add_option("--since", a->since,
                     "an older snapshot of the same disk: write only what changed");
  OnRun(backup, cli, [cli, a] { return RunBackup(*cli, *a); });
  auto* restore = app->add_subcommand(
      "restore",
      "restore a backup: a full one into a new disk, an incremental one onto the disk "
      "its base was restored to (restore a chain in order). The file is checked whole "
      "first: a truncated or corrupt one, or one for another base, changes nothing. "
      "Each restore ends with a snapshot named as the backup's");
  restore->add_option("file", a->file, "backup file")->required();
  restore->add_option("disk", a->disk, "the disk to restore into")->required();
  OnRun(restore, cli, [cli, a] { return RunRestore(*cli, *a); });
}

void AddExportImport(CLI::App* app, Cli* cli, std::shared_ptr<TransferArgs> a) {
  auto* exp = app->add_subcommand(
      "export", "write a disk or a snapshot as a sparse raw image (leaving UKAI is one command)");
  exp->add_option("ref", a->ref, "DISK or DISK@SNAPSHOT")->required();
  exp->add_option("file", a->file, "the raw image to write")->required();
  OnRun(exp, cli, [cli, a] { return RunExport(*cli, *a); });
  auto* imp = app->add_subcommand(
      "import",
      "make a new thin disk from a raw image or block device (blocks of zeros are not "
      "stored; holes are not even read)");
  imp->add_option("file", a->file, "raw image")->required();
  imp->add_option("disk", a->disk, "the new disk's name")->required();
  AddPlacementFlags(imp, &a->placement, "sites to place replicas in (a,b)",
                    "nodes to place replicas on", "copies of every block (default 2)");
  imp->add_option("--block-size", a->block_size, "placement unit (default 4M)");
  OnRun(imp, cli, [cli, a] { return RunImport(*cli, *a); });
}

}  // namespace

void AddTransferCommands(CLI::App* app, Cli* cli) {
  auto a = std::make_shared<TransferArgs>();
  AddBackupRestore(app, cli, a);
  AddExportImport(app, cli, a);
}

}  // namespace ukai::ctl
