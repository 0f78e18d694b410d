#include "meta/catalog.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "common/units.h"
#include "meta/placement.h"

namespace ukai::meta {
namespace {

uint64_t NowMs() { return static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())); }

template <typename Msg>
absl::StatusOr<Msg> Parse(const std::string& data, const std::string& what) {
  Msg m;
  if (!m.ParseFromString(data)) return absl::DataLossError("corrupt record " + what);
  return m;
}

absl::Status ValidateSize(uint64_t size) {
  if (size == 0) return absl::InvalidArgumentError("size must be greater than zero");
  if (size % 512 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("size %d is not a multiple of 512 bytes", size));
  }
  if (size > kMaxDiskSize) {
    return absl::InvalidArgumentError(absl::StrFormat("size %s is over the limit of %s",
                                                      FormatSize(size), FormatSize(kMaxDiskSize)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Catalog::Init() {
  for (const auto& p : {paths_.nodes(), paths_.live(), paths_.names(), paths_.ids(), paths_.disks(),
                        paths_.jobs(), paths_.frontends()}) {
    RETURN_IF_ERROR(EnsurePath(*store_, p));
  }
  return absl::OkStatus();
}

absl::Status Catalog::RegisterNode(const pb::NodeInfo& info, const pb::NodeLive& live) {
  RETURN_IF_ERROR(ValidateId("node id", info.id()));
  std::string data = info.SerializeAsString();
  auto cur = store_->Get(paths_.node(info.id()));
  if (absl::IsNotFound(cur.status())) {
    auto r = store_->Create(paths_.node(info.id()), data);
    if (!r.ok() && !absl::IsAlreadyExists(r.status())) return r.status();
  } else if (!cur.ok()) {
    return cur.status();
  } else if (cur->data != data) {
    RETURN_IF_ERROR(store_->Set(paths_.node(info.id()), data, -1).status());
  }
  auto r = store_->Create(paths_.live(info.id()), live.SerializeAsString(), CreateMode::kEphemeral);
  if (absl::IsAlreadyExists(r.status())) {
    return absl::AlreadyExistsError("node id '" + info.id() + "' is already live");
  }
  return r.status();
}

absl::StatusOr<std::map<std::string, pb::NodeState>> Catalog::NodeStates() {
  ASSIGN_OR_RETURN(auto ids, store_->Children(paths_.nodes()));
  std::map<std::string, pb::NodeState> out;
  for (const auto& id : ids) {
    auto v = store_->Get(paths_.node_state(id));
    if (absl::IsNotFound(v.status())) {
      out[id] = pb::NodeState();
      continue;
    }
    if (!v.ok()) return v.status();
    ASSIGN_OR_RETURN(out[id], Parse<pb::NodeState>(v->data, paths_.node_state(id)));
  }
  return out;
}

absl::StatusOr<pb::NodeState> Catalog::UpdateNodeState(
    const std::string& id, const std::function<bool(pb::NodeState*)>& change) {
  RETURN_IF_ERROR(ValidateId("node id", id));
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto node = store_->Get(paths_.node(id));
    if (absl::IsNotFound(node.status())) return absl::NotFoundError("no node '" + id + "'");
    RETURN_IF_ERROR(node.status());
    pb::NodeState st;
    auto v = store_->Get(paths_.node_state(id));
    if (v.ok()) {
      ASSIGN_OR_RETURN(st, Parse<pb::NodeState>(v->data, paths_.node_state(id)));
    } else if (!absl::IsNotFound(v.status())) {
      return v.status();
    }
    if (!change(&st)) return st;
    absl::Status s =
        v.ok() ? store_->Set(paths_.node_state(id), st.SerializeAsString(), v->version).status()
               : store_->Create(paths_.node_state(id), st.SerializeAsString()).status();
    if (absl::IsAborted(s) || absl::IsAlreadyExists(s)) continue;  // raced: look again
    if (absl::IsNotFound(s)) return absl::NotFoundError("no node '" + id + "'");
    RETURN_IF_ERROR(s);
    return st;
  }
  return absl::AbortedError("node " + id + ": too much contention");
}

absl::Status Catalog::RemoveNode(const std::string& id) {
  RETURN_IF_ERROR(ValidateId("node id", id));
  std::vector<Op> ops;
  auto st = store_->Get(paths_.node_state(id));
  if (st.ok()) ops.push_back(Op::Delete(paths_.node_state(id), st->version));
  ops.push_back(Op::Delete(paths_.node(id), -1));
  absl::Status s = store_->Multi(ops);
  if (absl::IsNotFound(s)) return absl::NotFoundError("no node '" + id + "'");
  return s;
}

absl::StatusOr<std::vector<pb::NodeInfo>> Catalog::ListNodes() {
  ASSIGN_OR_RETURN(auto ids, store_->Children(paths_.nodes()));
  std::vector<pb::NodeInfo> out;
  for (const auto& id : ids) {
    auto v = store_->Get(paths_.node(id));
    if (absl::IsNotFound(v.status())) continue;
    if (!v.ok()) return v.status();
    ASSIGN_OR_RETURN(auto info, Parse<pb::NodeInfo>(v->data, paths_.node(id)));
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::set<std::string>> Catalog::LiveNodes(WatchFn watch) {
  ASSIGN_OR_RETURN(auto ids, store_->Children(paths_.live(), std::move(watch)));
  return std::set<std::string>(ids.begin(), ids.end());
}

absl::StatusOr<pb::DiskSpec> Catalog::CreateDisk(const pb::CreateDiskRequest& req) {
  RETURN_IF_ERROR(ValidateDiskName(req.name()));
  RETURN_IF_ERROR(ValidateSize(req.size()));
  uint32_t bs = req.block_size() ? req.block_size() : kDefaultBlockSize;
  if (bs < kMinBlockSize || bs > kMaxBlockSize || (bs & (bs - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("block size %d must be a power of two between %s and %s", bs,
                        FormatSize(kMinBlockSize), FormatSize(kMaxBlockSize)));
  }
  pb::Placement placement = req.placement();
  if (placement.replicas() == 0) {
    placement.set_replicas(placement.nodes_size() > 0 ? placement.nodes_size() : 2);
  }
  ASSIGN_OR_RETURN(auto nodes, ListNodes());
  RETURN_IF_ERROR(ValidatePlacement(placement, nodes));
  RETURN_IF_ERROR(ValidateFailurePolicy(req.failure(), placement));
  if (store_->Get(paths_.name(req.name())).ok()) {
    return absl::AlreadyExistsError("disk '" + req.name() + "' already exists");
  }

  pb::DiskSpec spec;
  spec.set_name(req.name());
  spec.set_size(req.size());
  spec.set_block_size(bs);
  *spec.mutable_placement() = placement;
  *spec.mutable_failure() = req.failure();
  ASSIGN_OR_RETURN(uint64_t id, NewDiskId());
  RETURN_IF_ERROR(CreateDiskRecords(&spec, id, {}));
  return spec;
}

absl::StatusOr<uint64_t> Catalog::NewDiskId() {
  ASSIGN_OR_RETURN(std::string seq,
                   store_->Create(paths_.ids() + "/d", "", CreateMode::kSequential));
  uint64_t id = 0;
  if (!absl::SimpleAtoi(seq.substr(seq.size() - 10), &id)) {
    return absl::InternalError("bad sequential id " + seq);
  }
  (void)store_->Delete(seq);  // the parent's counter keeps ids unique
  return id + 1;
}

absl::Status Catalog::CreateDiskRecords(pb::DiskSpec* spec, uint64_t id, std::vector<Op> more) {
  spec->set_id(id);
  spec->set_layout_version(1);
  spec->set_created_ms(NowMs());
  std::vector<Op> ops = {
      Op::Create(paths_.disk(id), spec->SerializeAsString()),
      Op::Create(paths_.blocks(id), ""),
      Op::Create(paths_.open(id), ""),
      Op::Create(paths_.writer(id), pb::WriterRecord().SerializeAsString()),
      Op::Create(paths_.name(spec->name()), absl::StrCat(id)),
  };
  for (auto& op : more) ops.push_back(std::move(op));
  absl::Status s = store_->Multi(ops);
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError("disk '" + spec->name() + "' already exists");
  }
  return s;
}

absl::StatusOr<uint64_t> Catalog::LookupName(const std::string& name, WatchFn watch) {
  RETURN_IF_ERROR(ValidateDiskName(name));
  auto v = store_->Get(paths_.name(name), std::move(watch));
  if (absl::IsNotFound(v.status())) return absl::NotFoundError("no disk named '" + name + "'");
  if (!v.ok()) return v.status();
  uint64_t id;
  if (!absl::SimpleAtoi(v->data, &id)) return absl::DataLossError("corrupt name record " + name);
  return id;
}

absl::StatusOr<VersionedSpec> Catalog::GetSpec(uint64_t id, WatchFn watch) {
  auto v = store_->Get(paths_.disk(id), std::move(watch));
  if (absl::IsNotFound(v.status())) {
    return absl::NotFoundError(absl::StrFormat("disk id %d does not exist", id));
  }
  if (!v.ok()) return v.status();
  ASSIGN_OR_RETURN(auto spec, Parse<pb::DiskSpec>(v->data, paths_.disk(id)));
  return VersionedSpec{std::move(spec), v->version};
}

absl::StatusOr<pb::DiskSpec> Catalog::GetByName(const std::string& name) {
  ASSIGN_OR_RETURN(uint64_t id, LookupName(name));
  auto v = GetSpec(id);
  if (absl::IsNotFound(v.status())) return absl::NotFoundError("no disk named '" + name + "'");
  if (!v.ok()) return v.status();
  return v->spec;
}

absl::StatusOr<std::vector<std::string>> Catalog::ListNames(WatchFn watch) {
  return store_->Children(paths_.names(), std::move(watch));
}

absl::StatusOr<std::vector<uint64_t>> Catalog::ListDiskIds(WatchFn watch) {
  ASSIGN_OR_RETURN(auto kids, store_->Children(paths_.disks(), std::move(watch)));
  std::vector<uint64_t> out;
  for (const auto& k : kids) {
    uint64_t id;
    if (absl::SimpleAtoi(k, &id)) out.push_back(id);
  }
  return out;
}

absl::StatusOr<std::vector<pb::DiskSpec>> Catalog::ListDisks() {
  ASSIGN_OR_RETURN(auto names, ListNames());
  std::vector<pb::DiskSpec> out;
  for (const auto& n : names) {
    auto spec = GetByName(n);
    if (absl::IsNotFound(spec.status())) continue;  // deleted meanwhile
    if (!spec.ok()) return spec.status();
    out.push_back(*spec);
  }
  return out;
}

absl::StatusOr<pb::DiskSpec> Catalog::Resize(const std::string& name, uint64_t size) {
  RETURN_IF_ERROR(ValidateSize(size));
  ASSIGN_OR_RETURN(uint64_t id, LookupName(name));
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto v, GetSpec(id));
    if (v.spec.state() != pb::DiskSpec::READY) {
      return absl::NotFoundError("disk '" + name + "' is being deleted");
    }
    if (size < v.spec.size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("disk '%s' is %s; shrinking to %s is not supported", name,
                          FormatSize(v.spec.size()), FormatSize(size)));
    }
    if (size == v.spec.size()) return v.spec;
    v.spec.set_size(size);
    v.spec.set_layout_version(v.spec.layout_version() + 1);
    auto r = store_->Set(paths_.disk(id), v.spec.SerializeAsString(), v.version);
    if (absl::IsAborted(r.status())) continue;
    RETURN_IF_ERROR(r.status());
    return v.spec;
  }
  return absl::AbortedError("disk '" + name + "' keeps changing; try again");
}

// The policy is not part of the layout: no layout version bump. Open volumes
// watch the spec and act on the new policy from their next I/O on.
absl::StatusOr<pb::DiskSpec> Catalog::SetFailurePolicy(const std::string& name,
                                                       const pb::FailurePolicy& policy) {
  ASSIGN_OR_RETURN(uint64_t id, LookupName(name));
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto v, GetSpec(id));
    if (v.spec.state() != pb::DiskSpec::READY) {
      return absl::NotFoundError("disk '" + name + "' is being deleted");
    }
    RETURN_IF_ERROR(ValidateFailurePolicy(policy, v.spec.placement()));
    *v.spec.mutable_failure() = policy;
    auto r = store_->Set(paths_.disk(id), v.spec.SerializeAsString(), v.version);
    if (absl::IsAborted(r.status())) continue;
    RETURN_IF_ERROR(r.status());
    return v.spec;
  }
  return absl::AbortedError("disk '" + name + "' keeps changing; try again");
}

absl::StatusOr<pb::DiskSpec> Catalog::BeginDelete(const std::string& name, bool force) {
  ASSIGN_OR_RETURN(uint64_t id, LookupName(name));
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto v, GetSpec(id));
    if (!force) {
      ASSIGN_OR_RETURN(auto open, OpenBy(id));
      if (!open.empty()) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "disk '%s' is open for writing on %s (site %s); use --force to delete anyway", name,
            open[0].host(), open[0].site()));
      }
    }
    if (v.spec.snapshots_size() > 0) {
      std::vector<std::string> snaps;
      for (const auto& sn : v.spec.snapshots()) snaps.push_back(sn.name());
      return absl::FailedPreconditionError(absl::StrFormat(
          "disk '%s' has %d snapshot(s) (%s); delete them first (ukaictl snap delete %s@%s)", name,
          snaps.size(), absl::StrJoin(snaps, ", "), name, snaps[0]));
    }
    v.spec.set_state(pb::DiskSpec::DELETING);
    v.spec.set_layout_version(v.spec.layout_version() + 1);
    std::vector<Op> ops = {Op::Set(paths_.disk(id), v.spec.SerializeAsString(), v.version),
                           Op::Delete(paths_.name(name), -1)};
    // A clone lets go of its parent's snapshot in the same step.
    if (v.spec.has_parent()) {
      ASSIGN_OR_RETURN(auto parent_op, ForgetClone(v.spec.parent(), id));
      if (parent_op) ops.push_back(*std::move(parent_op));
    }
    absl::Status s = store_->Multi(ops);
    if (absl::IsAborted(s)) continue;
    if (absl::IsNotFound(s)) return absl::NotFoundError("no disk named '" + name + "'");
    RETURN_IF_ERROR(s);
    return v.spec;
  }
  return absl::AbortedError("disk '" + name + "' keeps changing; try again");
}

absl::Status Catalog::FinishDelete(uint64_t id) {
  return DeleteRecursive(*store_, paths_.disk(id));
}

absl::StatusOr<std::vector<pb::OpenRecord>> Catalog::OpenBy(uint64_t id) {
  ASSIGN_OR_RETURN(auto hosts, store_->Children(paths_.open(id)));
  std::vector<pb::OpenRecord> out;
  for (const auto& h : hosts) {
    auto v = store_->Get(paths_.open(id, h));
    if (!v.ok()) continue;  // closed meanwhile
    pb::OpenRecord r;
    if (r.ParseFromString(v->data)) out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<pb::WriterRecord> Catalog::Writer(uint64_t id) {
  ASSIGN_OR_RETURN(auto v, store_->Get(paths_.writer(id)));
  return Parse<pb::WriterRecord>(v.data, paths_.writer(id));
}

absl::StatusOr<std::map<uint64_t, pb::BlockChunk>> Catalog::ReadChunks(uint64_t id) {
  ASSIGN_OR_RETURN(auto kids, store_->Children(paths_.blocks(id)));
  std::map<uint64_t, pb::BlockChunk> out;
  for (const auto& k : kids) {
    uint64_t c;
    if (!absl::SimpleAtoi(k, &c)) continue;
    ASSIGN_OR_RETURN(auto chunk, ReadChunk(id, c));
    if (chunk) out[c] = std::move(chunk->chunk);
  }
  return out;
}

}  // namespace ukai::meta
