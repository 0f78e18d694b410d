#include "ctl/jobs.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/units.h"

namespace ukai::ctl {

const char* JobState(pb::JobRecord::State s) {
  switch (s) {
    case pb::JobRecord::RUNNING: return "running";
    case pb::JobRecord::DONE: return "done";
    case pb::JobRecord::CANCELLED: return "cancelled";
    case pb::JobRecord::FAILED: return "failed";
    default: return "unknown";
  }
}

const char* JobKind(const pb::JobRecord& j) {
  switch (j.kind()) {
    case pb::JobRecord::REPAIR: return "repair";
    case pb::JobRecord::SCRUB: return "scrub";
    case pb::JobRecord::FLATTEN: return "flatten";
    default: return "relocate";
  }
}

json JobJson(const pb::JobRecord& j) {
  json t = {{"sites", std::vector<std::string>(j.target().sites().begin(), j.target().sites().end())},
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
              {"replace_nodes", std::vector<std::string>(j.replace_nodes().begin(), j.replace_nodes().end())},
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
  if (j.blocks_total() > 0) return std::min(1.0, double(j.blocks_done()) / double(j.blocks_total()));
  return 0.0;
}

void JobList(const Globals& g) {
  auto resp = Call<pb::ListJobsRequest, pb::ListJobsResponse>(
      g, &Admin::Stub::ListJobs, pb::ListJobsRequest());
  if (g.json) {
    json arr = json::array();
    for (const auto& j : resp.jobs()) arr.push_back(JobJson(j));
    return PrintJson(arr);
  }
  printf("%-14s %-9s %-16s %-18s %-10s %6s %21s  %s\n", "JOB", "KIND", "DISK", "TO", "STATE", "DONE",
         "COPIED", "NOTE");
  for (const auto& j : resp.jobs()) {
    std::string copied = FormatSize(j.bytes_done()) + " / " +
                         (j.bytes_total() ? FormatSize(j.bytes_total()) : std::string("?"));
    std::string note = j.error();
    if (note.empty() && j.cancel_requested() && j.state() == pb::JobRecord::RUNNING) note = "cancelling";
    if (note.empty() && j.state() == pb::JobRecord::RUNNING && !j.runner().empty()) {
      note = "on " + j.runner();
    }
    printf("%-14s %-9s %-16s %-18s %-10s %5.0f%% %21s  %s\n", j.id().c_str(), JobKind(j),
           j.disk_name().c_str(), TargetText(j).c_str(), JobState(j.state()),
           100 * JobFraction(j), copied.c_str(), note.c_str());
  }
}

namespace {

// One GetJob; the status instead of dying, so a waiter can ride out a
// ZooKeeper leader change or a restarting node.
grpc::Status TryGetJob(const Globals& g, Admin::Stub* stub, const std::string& id,
                       pb::JobRecord* out) {
  pb::JobRequest req;
  req.set_id(id);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(g.timeout_s));
  return stub->GetJob(&ctx, req, out);
}

}  // namespace

pb::JobRecord GetJob(const Globals& g, const std::string& id) {
  pb::JobRequest req;
  req.set_id(id);
  return Call<pb::JobRequest, pb::JobRecord>(g, &Admin::Stub::GetJob, req);
}

std::string Duration(double s) {
  if (s < 0 || s > 360000) return "--:--";
  int t = static_cast<int>(s + 0.5);
  return t >= 3600 ? absl::StrFormat("%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
                   : absl::StrFormat("%d:%02d", t / 60, t % 60);
}

void JobWait(const Globals& g, const std::string& id) {
  const bool tty = isatty(STDERR_FILENO) && !g.json;
  absl::Time start = absl::Now(), last_t = start;
  uint64_t last_bytes = 0;
  double rate = 0;  // bytes/s, smoothed
  bool first = true;
  pb::JobRecord j;
  auto stub = Connect(g);
  absl::Time failing_since = absl::InfiniteFuture();
  while (true) {
    grpc::Status st = TryGetJob(g, stub.get(), id, &j);
    absl::Time now = absl::Now();
    if (!st.ok()) {
      // Transient (ZooKeeper electing a leader, the admin node restarting):
      // keep waiting, up to --timeout in a row.
      bool transient = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      if (failing_since == absl::InfiniteFuture()) failing_since = now;
      if (!transient || now - failing_since > absl::Seconds(g.timeout_s)) Die(st.error_message());
      if (tty) fprintf(stderr, "\r%s: cannot reach the cluster (%s); retrying\033[K", id.c_str(),
                       st.error_message().c_str());
      absl::SleepFor(absl::Milliseconds(500));
      stub = Connect(g);
      continue;
    }
    failing_since = absl::InfiniteFuture();
    if (first) {
      last_bytes = j.bytes_done();
      first = false;
    } else if (now > last_t) {
      double inst = double(j.bytes_done() - std::min(j.bytes_done(), last_bytes)) /
                    absl::ToDoubleSeconds(now - last_t);
      rate = rate == 0 ? inst : 0.7 * rate + 0.3 * inst;
      last_bytes = j.bytes_done();
      last_t = now;
    }
    if (tty) {
      double f = JobFraction(j);
      int width = 30, full = static_cast<int>(f * width);
      std::string bar = std::string(full, '#') + std::string(width - full, '.');
      uint64_t left = j.bytes_total() > j.bytes_done() ? j.bytes_total() - j.bytes_done() : 0;
      std::string eta = rate > 0 && j.bytes_total() ? Duration(double(left) / rate) : "--:--";
      fprintf(stderr, "\r%s [%s] %3.0f%%  %s / %s  %s/s  ETA %s %s\033[K", id.c_str(), bar.c_str(),
              100 * f, FormatSize(j.bytes_done()).c_str(),
              j.bytes_total() ? FormatSize(j.bytes_total()).c_str() : "?",
              FormatSize(static_cast<uint64_t>(rate)).c_str(), eta.c_str(),
              j.error().empty() ? "" : ("(" + j.error() + ")").c_str());
      fflush(stderr);
    }
    if (j.state() != pb::JobRecord::RUNNING) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  if (tty) fprintf(stderr, "\n");
  double secs = absl::ToDoubleSeconds(absl::Now() - start);
  if (g.json) {
    PrintJson(JobJson(j));
  } else if (j.state() == pb::JobRecord::DONE && j.kind() == pb::JobRecord::SCRUB) {
    printf("job %s done: disk %s scrubbed in %s: %lu pages checked, %lu failing their checksum, "
           "%lu differing between replicas\n", id.c_str(), j.disk_name().c_str(), Duration(secs).c_str(),
           static_cast<unsigned long>(j.pages_checked()), static_cast<unsigned long>(j.bad_pages()),
           static_cast<unsigned long>(j.mismatched_pages()));
    for (const auto& f : j.findings()) printf("  %s\n", f.c_str());
  } else if (j.state() == pb::JobRecord::DONE) {
    printf("job %s done: disk %s on %s, %s copied in %s\n", id.c_str(), j.disk_name().c_str(),
           TargetText(j).c_str(), FormatSize(j.bytes_done()).c_str(),
           Duration(secs).c_str());
  }
  if (j.state() == pb::JobRecord::CANCELLED) Die("job " + id + " was cancelled");
  if (j.state() == pb::JobRecord::FAILED) Die("job " + id + " failed: " + j.error());
}

}  // namespace ukai::ctl
