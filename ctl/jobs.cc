#include "ctl/jobs.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "common/units.h"
#include "ctl/format.h"

namespace ukai::ctl {

const char* JobState(pb::JobRecord::State s) {
  switch (s) {
    case pb::JobRecord::RUNNING:
      return "running";
    case pb::JobRecord::DONE:
      return "done";
    case pb::JobRecord::CANCELLED:
      return "cancelled";
    case pb::JobRecord::FAILED:
      return "failed";
    default:
      return "unknown";
  }
}

const char* JobKind(const pb::JobRecord& j) {
  switch (j.kind()) {
    case pb::JobRecord::REPAIR:
      return "repair";
    case pb::JobRecord::SCRUB:
      return "scrub";
    case pb::JobRecord::FLATTEN:
      return "flatten";
    default:
      return "relocate";
  }
}

json JobJson(const pb::JobRecord& j) {
  json t = {
      {"sites", std::vector<std::string>(j.target().sites().begin(), j.target().sites().end())},
      {"nodes", std::vector<std::string>(j.target().nodes().begin(), j.target().nodes().end())}};
  return json{{"job", j.id()},
              {"kind", JobKind(j)},
              {"disk", j.disk_name()},
              {"disk_id", j.disk_id()},
              {"target", t},
              {"state", JobState(j.state())},
              {"cancel_requested", j.cancel_requested()},
              {"bandwidth_bps", j.bandwidth_bps()},
              {"bytes_done", j.bytes_done()},
              {"bytes_total", j.bytes_total()},
              {"blocks_done", j.blocks_done()},
              {"blocks_total", j.blocks_total()},
              {"runner", j.runner()},
              {"error", j.error()},
              {"created_ms", j.created_ms()},
              {"finished_ms", j.finished_ms()},
              {"replace_nodes",
               std::vector<std::string>(j.replace_nodes().begin(), j.replace_nodes().end())},
              {"pages_checked", j.pages_checked()},
              {"bad_pages", j.bad_pages()},
              {"mismatched_pages", j.mismatched_pages()},
              {"findings", std::vector<std::string>(j.findings().begin(), j.findings().end())}};
}

std::string TargetText(const pb::JobRecord& j) {
  if (j.kind() != pb::JobRecord::RELOCATE) return "its own replicas";
  const pb::Placement& p = j.target();
  if (!p.sites().empty()) return "sites " + absl::StrJoin(p.sites(), ",");
  return "nodes " + absl::StrJoin(p.nodes(), ",");
}

double JobFraction(const pb::JobRecord& j) {
  if (j.state() == pb::JobRecord::DONE) return 1.0;
  if (j.bytes_total() > 0) return std::min(1.0, double(j.bytes_done()) / double(j.bytes_total()));
  if (j.blocks_total() > 0)
    return std::min(1.0, double(j.blocks_done()) / double(j.blocks_total()));
  return 0.0;
}

absl::Status JobList(const Cli& cli) {
  ASSIGN_OR_RETURN(auto resp, (Call<pb::ListJobsRequest, pb::ListJobsResponse>(
                                  cli, &AdminStub::ListJobs, pb::ListJobsRequest())));
  if (cli.g.json) {
    json arr = json::array();
    for (const auto& j : resp.jobs()) arr.push_back(JobJson(j));
    PrintJson(arr);
    return absl::OkStatus();
  }
  printf("%-14s %-9s %-16s %-18s %-10s %6s %21s  %s\n", "JOB", "KIND", "DISK", "TO", "STATE",
         "DONE", "COPIED", "NOTE");
  for (const auto& j : resp.jobs()) {
    std::string copied = FormatSize(j.bytes_done()) + " / " +
                         (j.bytes_total() ? FormatSize(j.bytes_total()) : std::string("?"));
    std::string note = j.error();
    if (note.empty() && j.cancel_requested() && j.state() == pb::JobRecord::RUNNING)
      note = "cancelling";
    if (note.empty() && j.state() == pb::JobRecord::RUNNING && !j.runner().empty()) {
      note = "on " + j.runner();
    }
    printf("%-14s %-9s %-16s %-18s %-10s %5.0f%% %21s  %s\n", j.id().c_str(), JobKind(j),
           j.disk_name().c_str(), TargetText(j).c_str(), JobState(j.state()), 100 * JobFraction(j),
           copied.c_str(), note.c_str());
  }
  if (const uint64_t k = resp.keep_seconds(); k > 0) {
    std::string keep = k % 86400 == 0  ? absl::StrFormat("%d day(s)", k / 86400)
                       : k % 3600 == 0 ? absl::StrFormat("%d hour(s)", k / 3600)
                                       : absl::StrFormat("%d s", k);
    printf("(finished jobs are kept %s after they end, the newest %u at most)\n", keep.c_str(),
           resp.keep_max());
  }
  return absl::OkStatus();
}

std::string Duration(double s) {
  if (s < 0 || s > 360000) return "--:--";
  int t = static_cast<int>(s + 0.5);
  return t >= 3600 ? absl::StrFormat("%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
                   : absl::StrFormat("%d:%02d", t / 60, t % 60);
}

void PrintJobText(const pb::JobRecord& j) {
  printf("job:       %s (%s)\n", j.id().c_str(), JobKind(j));
  printf("disk:      %s\n", j.disk_name().c_str());
  printf("to:        %s\n", TargetText(j).c_str());
  printf("state:     %s%s\n", JobState(j.state()),
         j.cancel_requested() && j.state() == pb::JobRecord::RUNNING ? " (cancelling)" : "");
  printf("progress:  %.0f%%, %s of ~%s, %lu of %lu blocks\n", 100 * JobFraction(j),
         FormatSize(j.bytes_done()).c_str(), FormatSize(j.bytes_total()).c_str(),
         static_cast<unsigned long>(j.blocks_done()), static_cast<unsigned long>(j.blocks_total()));
  if (j.bandwidth_bps()) printf("bandwidth: %s/s\n", FormatSize(j.bandwidth_bps()).c_str());
  if (!j.runner().empty()) printf("runner:    %s\n", j.runner().c_str());
  printf("started:   %s\n", Time(j.created_ms()).c_str());
  if (j.finished_ms()) printf("ended:     %s\n", Time(j.finished_ms()).c_str());
  if (!j.error().empty()) printf("note:      %s\n", j.error().c_str());
  if (!j.replace_nodes().empty()) {
    printf("moving:    replicas off %s\n", absl::StrJoin(j.replace_nodes(), ",").c_str());
  }
  if (j.kind() == pb::JobRecord::SCRUB) {
    printf("checked:   %lu pages, %lu failing their checksum, %lu differing between replicas\n",
           static_cast<unsigned long>(j.pages_checked()), static_cast<unsigned long>(j.bad_pages()),
           static_cast<unsigned long>(j.mismatched_pages()));
    for (const auto& f : j.findings()) printf("  %s\n", f.c_str());
  }
}

namespace {

// A job's copy rate as `job wait` sees it, smoothed over its polls.
class RateMeter {
 public:
  double Update(const pb::JobRecord& j, absl::Time now) {
    if (first_) {
      last_bytes_ = j.bytes_done();
      last_t_ = now;
      first_ = false;
    } else if (now > last_t_) {
      double inst = double(j.bytes_done() - std::min(j.bytes_done(), last_bytes_)) /
                    absl::ToDoubleSeconds(now - last_t_);
      rate_ = rate_ == 0 ? inst : 0.7 * rate_ + 0.3 * inst;
      last_bytes_ = j.bytes_done();
      last_t_ = now;
    }
    return rate_;
  }

 private:
  bool first_ = true;
  uint64_t last_bytes_ = 0;
  absl::Time last_t_;
  double rate_ = 0;  // bytes/s
};

void DrawBar(const pb::JobRecord& j, double rate) {
  double f = JobFraction(j);
  int width = 30, full = static_cast<int>(f * width);
  std::string bar = std::string(full, '#') + std::string(width - full, '.');
  uint64_t left = j.bytes_total() > j.bytes_done() ? j.bytes_total() - j.bytes_done() : 0;
  std::string eta = rate > 0 && j.bytes_total() ? Duration(double(left) / rate) : "--:--";
  fprintf(stderr, "\r%s [%s] %3.0f%%  %s / %s  %s/s  ETA %s %s\033[K", j.id().c_str(), bar.c_str(),
          100 * f, FormatSize(j.bytes_done()).c_str(),
          j.bytes_total() ? FormatSize(j.bytes_total()).c_str() : "?",
          FormatSize(static_cast<uint64_t>(rate)).c_str(), eta.c_str(),
          j.error().empty() ? "" : ("(" + j.error() + ")").c_str());
  fflush(stderr);
}

// One GetJob; a transient failure (ZooKeeper electing a leader, the admin
// node restarting) is ridden out for up to --timeout in a row.
absl::StatusOr<bool> PollJob(const Cli& cli, const std::string& id, bool tty,
                             absl::Time* failing_since, pb::JobRecord* j) {
  pb::JobRequest req;
  req.set_id(id);
  auto got = Call<pb::JobRequest, pb::JobRecord>(cli, &AdminStub::GetJob, req);
  const absl::Time now = absl::Now();
  if (got.ok()) {
    *failing_since = absl::InfiniteFuture();
    *j = *std::move(got);
    return true;
  }
  const bool transient =
      absl::IsUnavailable(got.status()) || absl::IsDeadlineExceeded(got.status());
  if (*failing_since == absl::InfiniteFuture()) *failing_since = now;
  if (!transient || now - *failing_since > absl::Seconds(cli.g.timeout_s)) return got.status();
  if (tty) {
    fprintf(stderr, "\r%s: cannot reach the cluster (%s); retrying\033[K", id.c_str(),
            std::string(got.status().message()).c_str());
  }
  return false;
}

absl::Status PrintJobEnd(const Cli& cli, const pb::JobRecord& j, double secs) {
  const std::string& id = j.id();
  if (cli.g.json) {
    PrintJson(JobJson(j));
  } else if (j.state() == pb::JobRecord::DONE && j.kind() == pb::JobRecord::SCRUB) {
    printf(
        "job %s done: disk %s scrubbed in %s: %lu pages checked, %lu failing their checksum, "
        "%lu differing between replicas\n",
        id.c_str(), j.disk_name().c_str(), Duration(secs).c_str(),
        static_cast<unsigned long>(j.pages_checked()), static_cast<unsigned long>(j.bad_pages()),
        static_cast<unsigned long>(j.mismatched_pages()));
    for (const auto& f : j.findings()) printf("  %s\n", f.c_str());
  } else if (j.state() == pb::JobRecord::DONE) {
    printf("job %s done: disk %s on %s, %s copied in %s\n", id.c_str(), j.disk_name().c_str(),
           TargetText(j).c_str(), FormatSize(j.bytes_done()).c_str(), Duration(secs).c_str());
  }
  if (j.state() == pb::JobRecord::CANCELLED)
    return absl::CancelledError("job " + id + " was cancelled");
  if (j.state() == pb::JobRecord::FAILED)
    return absl::AbortedError("job " + id + " failed: " + j.error());
  return absl::OkStatus();
}

}  // namespace

absl::Status JobWait(const Cli& cli, const std::string& id) {
  const bool tty = isatty(STDERR_FILENO) && !cli.g.json;
  const absl::Time start = absl::Now();
  RateMeter meter;
  pb::JobRecord j;
  absl::Time failing_since = absl::InfiniteFuture();
  while (true) {
    ASSIGN_OR_RETURN(bool got, PollJob(cli, id, tty, &failing_since, &j));
    if (got) {
      const double rate = meter.Update(j, absl::Now());
      if (tty) DrawBar(j, rate);
      if (j.state() != pb::JobRecord::RUNNING) break;
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
  if (tty) fprintf(stderr, "\n");
  return PrintJobEnd(cli, j, absl::ToDoubleSeconds(absl::Now() - start));
}

absl::Status ShowStartedJob(const Cli& cli, const pb::JobRecord& j, bool wait) {
  if (wait) return JobWait(cli, j.id());
  if (cli.g.json) {
    PrintJson(JobJson(j));
  } else {
    printf("%s\n", j.id().c_str());
  }
  return absl::OkStatus();
}

absl::Status StartDiskJob(const Cli& cli,
                          grpc::Status (AdminStub::*method)(grpc::ClientContext*,
                                                            const pb::RepairRequest&,
                                                            pb::JobRecord*),
                          const std::string& name, const std::string& bandwidth, bool wait) {
  pb::RepairRequest req;
  req.set_name(name);
  if (!bandwidth.empty()) {
    ASSIGN_OR_RETURN(uint64_t bps, SizeArg(bandwidth));
    req.set_bandwidth_bps(bps);
  }
  ASSIGN_OR_RETURN(auto j, (Call<pb::RepairRequest, pb::JobRecord>(cli, method, req)));
  return ShowStartedJob(cli, j, wait);
}

}  // namespace ukai::ctl
