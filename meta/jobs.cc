// The job half of Catalog: records of long operations (relocation) and the
// one-job-per-disk marker. docs/ZOOKEEPER.md has the tree.
#include <algorithm>
#include <random>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "common/units.h"
#include "meta/catalog.h"
#include "meta/placement.h"

namespace ukai::meta {
namespace {

uint64_t NowMs() { return static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())); }

std::string NewJobId() {
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock l(&mu);
  return absl::StrFormat("job-%08x", static_cast<uint32_t>(rng()));
}

absl::StatusOr<pb::JobRecord> ParseJob(const std::string& data, const std::string& path) {
  pb::JobRecord j;
  if (!j.ParseFromString(data)) return absl::DataLossError("corrupt record " + path);
  return j;
}

}  // namespace

absl::StatusOr<pb::JobRecord> Catalog::StartRelocation(const std::string& name,
                                                       pb::Placement target,
                                                       uint64_t bandwidth_bps) {
  if (target.sites().empty() && target.nodes().empty()) {
    return absl::InvalidArgumentError("say where to: --sites or --nodes");
  }
  ASSIGN_OR_RETURN(uint64_t id, LookupName(name));
  ASSIGN_OR_RETURN(auto nodes, ListNodes());
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto spec, GetSpec(id));
    if (spec.spec.state() != pb::DiskSpec::READY) {
      return absl::FailedPreconditionError("disk '" + name + "' is being deleted");
    }
    RETURN_IF_ERROR(NoJobRunning(id, name));
    target.set_replicas(spec.spec.placement().replicas());
    if (!target.nodes().empty() && target.nodes_size() < static_cast<int>(target.replicas())) {
      return absl::InvalidArgumentError(
          absl::StrFormat("disk '%s' has %d replicas; name at least that many nodes (got %d)", name,
                          target.replicas(), target.nodes_size()));
    }
    RETURN_IF_ERROR(ValidatePlacement(target, nodes));
    ASSIGN_OR_RETURN(auto chunks, ReadChunks(id));

    pb::JobRecord job;
    job.set_id(NewJobId());
    job.set_kind(pb::JobRecord::RELOCATE);
    job.set_disk_id(id);
    job.set_disk_name(name);
    *job.mutable_target() = target;
    *job.mutable_previous() = spec.spec.placement();
    job.set_bandwidth_bps(bandwidth_bps);
    job.set_blocks_total(chunks.size() * kChunkBlocks);  // refined by the runner
    job.set_created_ms(NowMs());
    pb::DiskSpec next = spec.spec;
    *next.mutable_placement() = target;
    next.set_layout_version(next.layout_version() + 1);
    absl::Status s = store_->Multi({
        Op::Create(paths_.job(job.id()), job.SerializeAsString()),
        Op::Create(paths_.disk_job(id), job.id()),
        Op::Set(paths_.disk(id), next.SerializeAsString(), spec.version),
    });
    if (absl::IsAborted(s)) continue;        // the spec changed: look again
    if (absl::IsAlreadyExists(s)) continue;  // a job id clash or a job just started
    if (absl::IsNotFound(s)) return absl::NotFoundError("no disk named '" + name + "'");
    RETURN_IF_ERROR(s);
    return job;
  }
  return absl::AbortedError("disk '" + name + "' kept changing; try again");
}

absl::Status Catalog::NoJobRunning(uint64_t id, const std::string& name) {
  auto running = store_->Get(paths_.disk_job(id));
  if (absl::IsNotFound(running.status())) return absl::OkStatus();
  if (!running.ok()) return running.status();
  auto job = GetJob(running->data);
  const char* what = "relocated";
  if (job.ok() && job->job.kind() == pb::JobRecord::REPAIR) what = "repaired";
  if (job.ok() && job->job.kind() == pb::JobRecord::SCRUB) what = "scrubbed";
  return absl::FailedPreconditionError(absl::StrFormat(
      "disk '%s' is already being %s by %s (wait for it, or `ukaictl job cancel %s`)", name, what,
      running->data, running->data));
}

absl::StatusOr<pb::JobRecord> Catalog::StartRepair(const std::string& name, uint64_t bandwidth_bps,
                                                   const std::vector<std::string>& replace) {
  return StartDiskJob(name, pb::JobRecord::REPAIR, bandwidth_bps, replace);
}

absl::StatusOr<pb::JobRecord> Catalog::StartScrub(const std::string& name, uint64_t bandwidth_bps) {
  return StartDiskJob(name, pb::JobRecord::SCRUB, bandwidth_bps, {});
}

absl::StatusOr<pb::JobRecord> Catalog::StartFlatten(const std::string& name,
                                                    uint64_t bandwidth_bps) {
  ASSIGN_OR_RETURN(auto spec, GetByName(name));
  if (!spec.has_parent()) {
    return absl::FailedPreconditionError("disk '" + name + "' is not a clone: nothing to flatten");
  }
  return StartDiskJob(name, pb::JobRecord::FLATTEN, bandwidth_bps, {});
}

absl::StatusOr<pb::JobRecord> Catalog::StartDiskJob(const std::string& name,
                                                    pb::JobRecord::Kind kind,
                                                    uint64_t bandwidth_bps,
                                                    const std::vector<std::string>& replace) {
  ASSIGN_OR_RETURN(uint64_t id, LookupName(name));
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSIGN_OR_RETURN(auto spec, GetSpec(id));
    if (spec.spec.state() != pb::DiskSpec::READY) {
      return absl::FailedPreconditionError("disk '" + name + "' is being deleted");
    }
    RETURN_IF_ERROR(NoJobRunning(id, name));
    ASSIGN_OR_RETURN(auto chunks, ReadChunks(id));
    pb::JobRecord job;
    job.set_id(NewJobId());
    job.set_kind(kind);
    job.set_disk_id(id);
    job.set_disk_name(name);
    *job.mutable_target() = spec.spec.placement();
    *job.mutable_previous() = spec.spec.placement();
    job.set_bandwidth_bps(bandwidth_bps);
    for (const auto& n : replace) job.add_replace_nodes(n);
    job.set_blocks_total(chunks.size() * kChunkBlocks);  // refined by the runner
    job.set_created_ms(NowMs());
    absl::Status s = store_->Multi({
        Op::Create(paths_.job(job.id()), job.SerializeAsString()),
        Op::Create(paths_.disk_job(id), job.id()),
        Op::Check(paths_.disk(id), spec.version),  // not deleted meanwhile
    });
    if (absl::IsAborted(s) || absl::IsAlreadyExists(s)) continue;
    if (absl::IsNotFound(s)) return absl::NotFoundError("no disk named '" + name + "'");
    RETURN_IF_ERROR(s);
    return job;
  }
  return absl::AbortedError("disk '" + name + "' kept changing; try again");
}

absl::StatusOr<VersionedJob> Catalog::GetJob(const std::string& id, WatchFn watch) {
  RETURN_IF_ERROR(ValidateId("job id", id));
  auto v = store_->Get(paths_.job(id), std::move(watch));
  if (absl::IsNotFound(v.status())) return absl::NotFoundError("no job '" + id + "'");
  if (!v.ok()) return v.status();
  ASSIGN_OR_RETURN(auto job, ParseJob(v->data, paths_.job(id)));
  return VersionedJob{std::move(job), v->version};
}

absl::StatusOr<std::vector<pb::JobRecord>> Catalog::ListJobs(WatchFn watch) {
  ASSIGN_OR_RETURN(auto ids, store_->Children(paths_.jobs(), std::move(watch)));
  std::vector<pb::JobRecord> out;
  for (const auto& id : ids) {
    auto j = GetJob(id);
    if (absl::IsNotFound(j.status())) continue;  // removed meanwhile
    if (!j.ok()) return j.status();
    out.push_back(std::move(j->job));
  }
  return out;
}

absl::StatusOr<int> Catalog::PruneJobs(const JobRetention& r, absl::Time now) {
  ASSIGN_OR_RETURN(auto jobs, ListJobs());
  std::vector<const pb::JobRecord*> finished;
  for (const auto& j : jobs) {
    if (j.state() != pb::JobRecord::RUNNING) finished.push_back(&j);
  }
  std::sort(finished.begin(), finished.end(), [](auto* a, auto* b) {
    return a->finished_ms() > b->finished_ms();  // newest first
  });
  const uint64_t cutoff =
      static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMillis(now - r.keep)));
  int removed = 0;
  for (size_t i = 0; i < finished.size(); ++i) {
    if (static_cast<int>(i) < r.keep_max && finished[i]->finished_ms() >= cutoff) continue;
    const std::string& id = finished[i]->id();
    (void)store_->Delete(paths_.job_runner(id));  // none once it ended, normally
    absl::Status s = store_->Delete(paths_.job(id));
    if (s.ok()) ++removed;
    if (!s.ok() && !absl::IsNotFound(s)) return s;  // NOT_FOUND: another node was first
  }
  return removed;
}

absl::StatusOr<pb::JobRecord> Catalog::UpdateJob(
    const std::string& id, const std::function<void(pb::JobRecord*)>& change) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    ASSIGN_OR_RETURN(auto j, GetJob(id));
    change(&j.job);
    auto s = store_->Set(paths_.job(id), j.job.SerializeAsString(), j.version);
    if (absl::IsAborted(s.status())) continue;
    RETURN_IF_ERROR(s.status());
    return j.job;
  }
  return absl::AbortedError("job " + id + ": too much contention");
}

absl::StatusOr<pb::JobRecord> Catalog::FinishJob(const std::string& id, pb::JobRecord::State state,
                                                 const std::string& error) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    ASSIGN_OR_RETURN(auto j, GetJob(id));
    if (j.job.state() != pb::JobRecord::RUNNING) return j.job;  // already final
    j.job.set_state(state);
    j.job.set_error(error);
    j.job.set_finished_ms(NowMs());
    std::vector<Op> ops = {Op::Set(paths_.job(id), j.job.SerializeAsString(), j.version)};
    auto marker = store_->Get(paths_.disk_job(j.job.disk_id()));
    if (marker.ok() && marker->data == id) {
      ops.push_back(Op::Delete(paths_.disk_job(j.job.disk_id()), marker->version));
    }
    absl::Status s = store_->Multi(ops);
    if (absl::IsAborted(s) || absl::IsNotFound(s)) continue;
    RETURN_IF_ERROR(s);
    return j.job;
  }
  return absl::AbortedError("job " + id + ": too much contention");
}

absl::Status Catalog::PublishFrontend(const pb::FrontendRecord& r) {
  const std::string path = paths_.frontend(r.host());
  auto s = store_->Set(path, r.SerializeAsString(), -1);
  if (absl::IsNotFound(s.status())) {  // first time, or our session expired
    return store_->Create(path, r.SerializeAsString(), CreateMode::kEphemeral).status();
  }
  return s.status();
}

absl::StatusOr<std::vector<pb::FrontendRecord>> Catalog::ListFrontends() {
  auto hosts = store_->Children(paths_.frontends());
  if (absl::IsNotFound(hosts.status())) return std::vector<pb::FrontendRecord>();
  if (!hosts.ok()) return hosts.status();
  std::vector<pb::FrontendRecord> out;
  for (const auto& h : *hosts) {
    auto v = store_->Get(paths_.frontend(h));
    if (!v.ok()) continue;  // gone meanwhile
    pb::FrontendRecord r;
    if (r.ParseFromString(v->data)) out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<pb::DiskSpec> Catalog::SetPlacement(uint64_t id, const pb::Placement& placement) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    ASSIGN_OR_RETURN(auto spec, GetSpec(id));
    *spec.spec.mutable_placement() = placement;
    spec.spec.set_layout_version(spec.spec.layout_version() + 1);
    auto s = store_->Set(paths_.disk(id), spec.spec.SerializeAsString(), spec.version);
    if (absl::IsAborted(s.status())) continue;
    RETURN_IF_ERROR(s.status());
    return spec.spec;
  }
  return absl::AbortedError(absl::StrFormat("disk %d: too much contention", id));
}

absl::StatusOr<pb::JobRecord> Catalog::CancelJob(const std::string& id) {
  ASSIGN_OR_RETURN(auto j, GetJob(id));
  if (j.job.state() != pb::JobRecord::RUNNING) {
    return absl::FailedPreconditionError(
        absl::StrFormat("job %s already ended (%s)", id, pb::JobRecord::State_Name(j.job.state())));
  }
  return UpdateJob(id, [](pb::JobRecord* r) { r->set_cancel_requested(true); });
}

}  // namespace ukai::meta
