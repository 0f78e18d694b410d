// The snapshot and clone half of Catalog (docs/ARCHITECTURE.md, "Snapshots
// and clones"): every step is one compare-and-set or one Multi, so a crash
// leaves either the old or the new state, never half of one.
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "common/units.h"
#include "meta/catalog.h"
#include "meta/generations.h"
#include "meta/placement.h"

namespace ukai::meta {
namespace {

uint64_t NowMs() { return static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())); }

// Clones of clones: deep enough for any golden-image tree, shallow enough
// that a read through the whole chain stays cheap.
constexpr uint32_t kMaxCloneDepth = 32;

}  // namespace

absl::StatusOr<pb::DiskSpec> Catalog::CreateSnapshot(const std::string& disk,
                                                     const std::string& snap,
                                                     const std::string& restored_from) {
  RETURN_IF_ERROR(ValidateSnapshotName(snap));
  ASSIGN_OR_RETURN(uint64_t id, LookupName(disk));
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto v, GetSpec(id));
    if (v.spec.state() != pb::DiskSpec::READY) {
      return absl::NotFoundError("disk '" + disk + "' is being deleted");
    }
    if (FindSnapshot(v.spec, snap) != nullptr) {
      return absl::AlreadyExistsError(
          absl::StrFormat("disk '%s' already has a snapshot '%s'", disk, snap));
    }
    if (v.spec.snapshots_size() >= kMaxSnapshots) {
      return absl::FailedPreconditionError(
          absl::StrFormat("disk '%s' has %d snapshots, the most it may keep; delete one first",
                          disk, v.spec.snapshots_size()));
    }
    pb::Snapshot* s = v.spec.add_snapshots();
    s->set_name(snap);
    s->set_generation(v.spec.generation());
    s->set_size(v.spec.size());
    s->set_created_ms(NowMs());
    s->set_restored_from(restored_from);
    v.spec.set_generation(v.spec.generation() + 1);
    v.spec.set_layout_version(v.spec.layout_version() + 1);
    auto r = store_->Set(paths_.disk(id), v.spec.SerializeAsString(), v.version);
    if (absl::IsAborted(r.status())) continue;
    if (absl::IsNotFound(r.status())) return absl::NotFoundError("no disk named '" + disk + "'");
    RETURN_IF_ERROR(r.status());
    return v.spec;
  }
  return absl::AbortedError("disk '" + disk + "' keeps changing; try again");
}

absl::StatusOr<pb::DiskSpec> Catalog::DeleteSnapshot(const std::string& disk,
                                                     const std::string& snap) {
  RETURN_IF_ERROR(ValidateSnapshotName(snap));
  ASSIGN_OR_RETURN(uint64_t id, LookupName(disk));
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto v, GetSpec(id));
    const pb::Snapshot* s = FindSnapshot(v.spec, snap);
    if (s == nullptr) {
      return absl::NotFoundError(absl::StrFormat("disk '%s' has no snapshot '%s'", disk, snap));
    }
    if (s->clones_size() > 0) {
      std::vector<std::string> names;
      for (uint64_t c : s->clones()) {
        auto cs = GetSpec(c);
        names.push_back(cs.ok() ? cs->spec.name() : absl::StrCat("disk id ", c));
      }
      return absl::FailedPreconditionError(
          absl::StrFormat("snapshot %s@%s has clones (%s); flatten or delete them first", disk,
                          snap, absl::StrJoin(names, ", ")));
    }
    pb::DiskSpec next = v.spec;
    next.clear_snapshots();
    for (const auto& other : v.spec.snapshots()) {
      if (other.name() != snap) *next.add_snapshots() = other;
    }
    next.set_layout_version(next.layout_version() + 1);
    auto r = store_->Set(paths_.disk(id), next.SerializeAsString(), v.version);
    if (absl::IsAborted(r.status())) continue;
    RETURN_IF_ERROR(r.status());
    RETURN_IF_ERROR(PruneBlockTable(id));
    return next;
  }
  return absl::AbortedError("disk '" + disk + "' keeps changing; try again");
}

absl::Status Catalog::PruneBlockTable(uint64_t id) {
  ASSIGN_OR_RETURN(auto kids, store_->Children(paths_.blocks(id)));
  for (const auto& k : kids) {
    uint64_t c;
    if (!absl::SimpleAtoi(k, &c)) continue;
    ASSIGN_OR_RETURN(auto chunk, ReadChunk(id, c));
    if (!chunk) continue;
    bool any = false;
    for (const auto& ptr : chunk->chunk.blocks()) any = any || ptr.kept_size() > 0;
    if (!any) continue;  // most chunks: nothing kept, nothing to write
    // Judged by the snapshots the write is conditioned on.
    auto r = UpdateChunkWithSpec(id, c, [&](const pb::DiskSpec& spec, pb::BlockChunk* ch) {
      bool changed = false;
      for (auto& ptr : *ch->mutable_blocks()) changed = Prune(&ptr, spec) || changed;
      return absl::StatusOr<bool>(changed);
    });
    if (absl::IsNotFound(r.status())) continue;
    RETURN_IF_ERROR(r.status());
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::DiskSpec> Catalog::CloneDisk(const std::string& parent, const std::string& snap,
                                                const std::string& name, pb::Placement placement) {
  RETURN_IF_ERROR(ValidateDiskName(name));
  RETURN_IF_ERROR(ValidateSnapshotName(snap));
  ASSIGN_OR_RETURN(uint64_t pid, LookupName(parent));
  ASSIGN_OR_RETURN(auto nodes, ListNodes());
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto v, GetSpec(pid));
    if (v.spec.state() != pb::DiskSpec::READY) {
      return absl::NotFoundError("disk '" + parent + "' is being deleted");
    }
    pb::Snapshot* s = nullptr;
    for (auto& sn : *v.spec.mutable_snapshots()) {
      if (sn.name() == snap) s = &sn;
    }
    if (s == nullptr) {
      return absl::NotFoundError(absl::StrFormat("disk '%s' has no snapshot '%s'", parent, snap));
    }
    const uint32_t depth = v.spec.has_parent() ? v.spec.parent().depth() + 1 : 1;
    if (depth > kMaxCloneDepth) {
      return absl::FailedPreconditionError(
          absl::StrFormat("disk '%s' is a clone %d deep; clones may go %d deep (flatten it first)",
                          parent, depth - 1, kMaxCloneDepth));
    }
    if (store_->Get(paths_.name(name)).ok()) {
      return absl::AlreadyExistsError("disk '" + name + "' already exists");
    }
    pb::DiskSpec clone;
    clone.set_name(name);
    clone.set_size(s->size());
    clone.set_block_size(v.spec.block_size());
    if (placement.sites().empty() && placement.nodes().empty()) {
      if (placement.replicas() == 0) placement.set_replicas(v.spec.placement().replicas());
      if (v.spec.placement().nodes().empty()) {
        *placement.mutable_sites() = v.spec.placement().sites();
      } else {
        *placement.mutable_nodes() = v.spec.placement().nodes();
      }
    }
    if (placement.replicas() == 0) {
      placement.set_replicas(placement.nodes_size() > 0 ? placement.nodes_size()
                                                        : v.spec.placement().replicas());
    }
    RETURN_IF_ERROR(ValidatePlacement(placement, nodes));
    *clone.mutable_placement() = placement;
    pb::FailurePolicy failure = v.spec.failure();
    if (!ValidateFailurePolicy(failure, placement).ok()) failure = pb::FailurePolicy();
    *clone.mutable_failure() = failure;
    auto* p = clone.mutable_parent();
    p->set_disk_id(pid);
    p->set_disk_name(parent);
    p->set_snapshot(snap);
    p->set_generation(s->generation());
    p->set_size(s->size());
    p->set_depth(depth);
    // The parent's spec is written under its version: a snapshot deleted
    // meanwhile fails the Multi, and the clone is never made.
    ASSIGN_OR_RETURN(uint64_t cid, NewDiskId());
    s->add_clones(cid);
    absl::Status st = CreateDiskRecords(
        &clone, cid, {Op::Set(paths_.disk(pid), v.spec.SerializeAsString(), v.version)});
    if (absl::IsAborted(st)) continue;
    RETURN_IF_ERROR(st);
    return clone;
  }
  return absl::AbortedError("disk '" + parent + "' keeps changing; try again");
}

absl::StatusOr<pb::DiskSpec> Catalog::ChangeSpec(
    uint64_t id, const std::function<absl::Status(pb::DiskSpec*)>& change) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto v, GetSpec(id));
    RETURN_IF_ERROR(change(&v.spec));
    v.spec.set_layout_version(v.spec.layout_version() + 1);
    auto r = store_->Set(paths_.disk(id), v.spec.SerializeAsString(), v.version);
    if (absl::IsAborted(r.status())) continue;
    RETURN_IF_ERROR(r.status());
    return v.spec;
  }
  return absl::AbortedError(absl::StrFormat("disk %d keeps changing; try again", id));
}

absl::StatusOr<pb::DiskSpec> Catalog::BeginRollback(uint64_t id, const std::string& snap) {
  bool resuming = false;
  auto spec = ChangeSpec(id, [&](pb::DiskSpec* s) {
    if (FindSnapshot(*s, snap) == nullptr) {
      return absl::NotFoundError(
          absl::StrFormat("disk '%s' has no snapshot '%s'", s->name(), snap));
    }
    resuming = s->rolling_back() == snap;
    if (!resuming) {
      s->set_rolling_back(snap);
      s->set_generation(s->generation() + 1);
    }
    return absl::OkStatus();
  });
  return spec;
}

absl::StatusOr<pb::DiskSpec> Catalog::EndRollback(uint64_t id) {
  return ChangeSpec(id, [](pb::DiskSpec* s) {
    s->clear_rolling_back();
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<Op>> Catalog::ForgetClone(const pb::ParentRef& parent,
                                                       uint64_t clone) {
  auto v = GetSpec(parent.disk_id());
  if (absl::IsNotFound(v.status())) return std::optional<Op>();
  RETURN_IF_ERROR(v.status());
  bool found = false;
  for (auto& s : *v->spec.mutable_snapshots()) {
    if (s.name() != parent.snapshot()) continue;
    auto* c = s.mutable_clones();
    for (int i = 0; i < c->size(); ++i) {
      if (c->Get(i) == clone) {
        c->erase(c->begin() + i);
        found = true;
        break;
      }
    }
  }
  if (!found) return std::optional<Op>();
  return std::optional<Op>(
      Op::Set(paths_.disk(parent.disk_id()), v->spec.SerializeAsString(), v->version));
}

absl::StatusOr<pb::DiskSpec> Catalog::DetachParent(uint64_t id) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto v, GetSpec(id));
    if (!v.spec.has_parent()) return v.spec;
    std::vector<Op> ops;
    ASSIGN_OR_RETURN(auto parent_op, ForgetClone(v.spec.parent(), id));
    if (parent_op) ops.push_back(*std::move(parent_op));
    v.spec.clear_parent();
    v.spec.set_layout_version(v.spec.layout_version() + 1);
    ops.push_back(Op::Set(paths_.disk(id), v.spec.SerializeAsString(), v.version));
    absl::Status s = store_->Multi(ops);
    if (absl::IsAborted(s)) continue;
    RETURN_IF_ERROR(s);
    return v.spec;
  }
  return absl::AbortedError(absl::StrFormat("disk %d keeps changing; try again", id));
}

}  // namespace ukai::meta
