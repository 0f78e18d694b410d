// ukaictl's job commands: list, info, wait (with its progress bar).
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
void JobList(const Globals& g);
pb::JobRecord GetJob(const Globals& g, const std::string& id);
// Waits for a job to end, drawing a progress bar on a terminal. Exit 0 if it
// finished; 1 with the reason if it was cancelled or failed.
void JobWait(const Globals& g, const std::string& id);

}  // namespace ukai::ctl

#endif  // UKAI_CTL_JOBS_H_
