#include "control/job_runner.h"

#include "common/log.h"
#include "control/jobs.h"

namespace ukai::control {

void JobRunner::Start() {
  loop_ = std::thread([this] { Loop(); });
}

void JobRunner::Stop() {
  if (stopping_.HasBeenNotified()) return;
  stopping_.Notify();
  if (loop_.joinable()) loop_.join();
  std::map<std::string, Running> running;
  {
    absl::MutexLock l(&mu_);
    running.swap(running_);
  }
  for (auto& [id, r] : running) {
    r.thread.join();
    (void)env_.catalog->store().Delete(env_.catalog->paths().job_runner(id));
  }
}

bool JobRunner::ShouldStop(const std::string& id) {
  if (stopping_.HasBeenNotified()) return true;
  auto v = env_.catalog->store().Get(env_.catalog->paths().job_runner(id));
  // Lost (session expired, someone else claimed it): let go at once.
  if (v.ok() && v->data != env_.self) return true;
  return absl::IsNotFound(v.status());
}

void JobRunner::Loop() {
  absl::Time next_prune = env_.clock->Now();
  do {
    if (env_.clock->Now() >= next_prune) {
      next_prune = env_.clock->Now() + kPruneEvery;
      auto n = env_.catalog->PruneJobs(env_.retention, env_.clock->Now());
      if (!n.ok()) LOG_WARN("pruning finished jobs: %s", n.status().ToString());
      if (n.ok() && *n > 0) LOG_INFO("removed %d finished job(s) past their retention", *n);
    }
    auto running = RunningJobs();
    absl::MutexLock l(&mu_);
    Reap();
    for (const auto& j : running) {
      if (!running_.count(j.id())) Claim(j);
    }
  } while (!stopping_.WaitForNotificationWithTimeout(absl::Seconds(1)));
}

std::vector<pb::JobRecord> JobRunner::RunningJobs() {
  auto ids = env_.catalog->store().Children(env_.catalog->paths().jobs());
  if (!ids.ok()) return {};
  std::vector<pb::JobRecord> out;
  std::set<std::string> listed(ids->begin(), ids->end());
  for (auto it = ended_.begin(); it != ended_.end();) {  // forget pruned ones
    it = listed.count(*it) ? std::next(it) : ended_.erase(it);
  }
  for (const auto& id : *ids) {
    if (ended_.count(id)) continue;  // an ended job never runs again: not re-read
    auto j = env_.catalog->GetJob(id);
    if (!j.ok()) continue;
    if (j->job.state() != pb::JobRecord::RUNNING) {
      ended_.insert(id);
    } else {
      out.push_back(std::move(j->job));
    }
  }
  return out;
}

// Joins the threads of jobs that ended.
void JobRunner::Reap() {
  for (auto it = running_.begin(); it != running_.end();) {
    if (*it->second.done) {
      it->second.thread.join();
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
}

void JobRunner::Claim(const pb::JobRecord& job) {
  auto c = env_.catalog->store().Create(env_.catalog->paths().job_runner(job.id()), env_.self,
                                        meta::CreateMode::kEphemeral);
  if (!c.ok()) return;  // someone runs it (ALREADY_EXISTS), or ZooKeeper is away
  LOG_INFO("job %s: claimed", job.id());
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::string id = job.id();
  running_[id].done = done;
  running_[id].thread = std::thread([this, id, done] {
    absl::Status s = RunJob(env_, id, [this, id] { return ShouldStop(id); });
    if (!s.ok()) LOG_WARN("job %s: stopped: %s", id, s.ToString());
    // Released whether it ended or stopped: another node may go on.
    (void)env_.catalog->store().Delete(env_.catalog->paths().job_runner(id));
    *done = true;
  });
}

}  // namespace ukai::control
