#include "control/jobs.h"

#include "common/log.h"
#include "common/status.h"
#include "control/flatten_job.h"
#include "control/relocate_job.h"
#include "control/scrub_job.h"

namespace ukai::control {
namespace {

absl::Status RunKind(JobContext* ctx, pb::JobRecord* job) {
  switch (job->kind()) {
    case pb::JobRecord::SCRUB:
      return ScrubJob(ctx, job).Run();
    case pb::JobRecord::FLATTEN:
      return FlattenJob(ctx, job).Run();
    default:
      return RelocateJob(ctx, job).Run();
  }
}

}  // namespace

absl::Status RunJob(const JobEnv& env, const std::string& id, const std::function<bool()>& stop) {
  ASSIGN_OR_RETURN(auto vj, env.catalog->GetJob(id));
  pb::JobRecord job = std::move(vj.job);
  if (job.state() != pb::JobRecord::RUNNING) return absl::OkStatus();
  JobContext ctx(env, stop, job.bandwidth_bps());
  absl::Status s = RunKind(&ctx, &job);
  if (s.ok() || absl::IsAborted(s)) return s;
  std::string why = absl::IsNotFound(s) ? "the disk was deleted" : std::string(s.message());
  LOG_WARN("job %s: failed: %s", id, why);
  auto f = env.catalog->FinishJob(id, pb::JobRecord::FAILED, why);
  return f.ok() ? absl::OkStatus() : f.status();
}

}  // namespace ukai::control
