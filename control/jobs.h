// RunJob: runs one job (a JobRecord in ZooKeeper) to its end with the class
// of its kind: RelocateJob (RELOCATE, REPAIR), ScrubJob (SCRUB) or
// FlattenJob (FLATTEN). Any node can run any job from whatever state
// ZooKeeper holds, so a job whose runner died is picked up by another.
#ifndef UKAI_CONTROL_JOBS_H_
#define UKAI_CONTROL_JOBS_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "control/job_context.h"

namespace ukai::control {

// Runs job `id` until it is DONE, CANCELLED or FAILED (OK; a job that
// fails is recorded FAILED with the reason), or until `stop` says so
// (ABORTED; the job stays RUNNING for the next runner). A job that is not
// RUNNING is left alone (OK).
absl::Status RunJob(const JobEnv& env, const std::string& id, const std::function<bool()>& stop);

}  // namespace ukai::control

#endif  // UKAI_CONTROL_JOBS_H_
