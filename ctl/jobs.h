// ukaictl's jobs: how they are shown (text, JSON, the progress bar) and
// waited for; the commands are in ctl/cmd_jobs.cc.
#ifndef UKAI_CTL_JOBS_H_
#define UKAI_CTL_JOBS_H_

#include <string>

#include "ctl/ukaictl.h"

namespace ukai::ctl {

const char* JobState(pb::JobRecord::State s);
const char* JobKind(const pb::JobRecord& j);
json JobJson(const pb::JobRecord& j);
// Where the job puts the data; a repair keeps it where it is.
std::string TargetText(const pb::JobRecord& j);
// Share of the job done, by bytes when the estimate is known, else blocks.
double JobFraction(const pb::JobRecord& j);
std::string Duration(double seconds);  // h:mm:ss or m:ss
absl::Status JobList(const Cli& cli);
// `job info`, in text.
void PrintJobText(const pb::JobRecord& j);
// Waits for a job to end, drawing a progress bar on a terminal. OK if it
// finished; CANCELLED or ABORTED with the reason if it was cancelled or
// failed; the admin's error if it stayed unreachable past --timeout.
absl::Status JobWait(const Cli& cli, const std::string& id);
// `disk repair`, `scrub`, `flatten`: starts the job of `method` on disk
// `name` (`bandwidth` empty: no limit), then ShowStartedJob.
absl::Status StartDiskJob(const Cli& cli,
                          grpc::Status (AdminStub::*method)(grpc::ClientContext*,
                                                            const pb::RepairRequest&,
                                                            pb::JobRecord*),
                          const std::string& name, const std::string& bandwidth, bool wait);
// A job just started: waited for with `wait`, else its id (or --json) printed.
absl::Status ShowStartedJob(const Cli& cli, const pb::JobRecord& j, bool wait);

}  // namespace ukai::ctl

#endif  // UKAI_CTL_JOBS_H_
