#include "control/job_context.h"

#include <algorithm>

#include "common/log.h"
#include "common/status.h"

namespace ukai::control {

JobContext::JobContext(const JobEnv& env, std::function<bool()> stop, uint64_t bandwidth_bps)
    : env_(env),
      stop_(std::move(stop)),
      pace_(bandwidth_bps, absl::Milliseconds(100), env.clock),
      backoff_(env.options.retry_min) {}

absl::Status JobContext::CheckStop() const {
  return stop_() ? absl::AbortedError("stopping") : absl::OkStatus();
}

absl::Status JobContext::CheckCancel(const std::string& id) {
  ASSIGN_OR_RETURN(auto cur, env_.catalog->GetJob(id));
  if (!cur.job.cancel_requested()) return absl::OkStatus();
  cancel_seen_ = true;
  return absl::CancelledError("cancel requested");
}

absl::Status JobContext::CrashPoint(const std::string& point) {
  {
    absl::MutexLock l(&crash_mu_);
    if (!env_.options.crash_at || !env_.options.crash_at(point)) return absl::OkStatus();
  }
  crashed_ = true;
  return absl::AbortedError("runner stopped at " + point);
}

absl::Status JobContext::Retry(pb::JobRecord* job, const absl::Status& why) {
  LOG_WARN("job %s: %s; retrying in %s", job->id(), why.ToString(), absl::FormatDuration(backoff_));
  auto u = env_.catalog->UpdateJob(job->id(), [&](pb::JobRecord* r) {
    r->set_error("retrying: " + std::string(why.message()));
  });
  if (u.ok()) *job = *std::move(u);
  env_.clock->SleepFor(backoff_);
  backoff_ = std::min(backoff_ * 2, env_.options.retry_max);
  return u.status();
}

absl::Status JobContext::FenceAll(uint64_t disk, uint64_t layout,
                                  const std::set<std::string>& nodes) {
  ASSIGN_OR_RETURN(auto live, env_.catalog->LiveNodes());
  for (const auto& n : nodes) {
    if (!live.count(n)) continue;
    absl::Status s = env_.peers->Fence(n, disk, layout);
    if (!s.ok()) return Annotate(s, "fencing " + n);
  }
  return absl::OkStatus();
}

}  // namespace ukai::control
