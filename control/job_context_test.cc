// JobContext on an in-memory catalog and a FakeClock: backoff, cancel and
// crash points without sleeping and without nodes.
#include "control/job_context.h"

#include <gtest/gtest.h>

#include "meta/mem_cluster_testing.h"

namespace ukai::control {
namespace {

class JobContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok);
    ASSERT_TRUE(cluster_.CreateDisk("d", 1 << 30).ok());
    auto job = cluster_.catalog.StartScrub("d", 0);
    ASSERT_TRUE(job.ok()) << job.status();
    job_ = *job;
    env_.self = "n1";
    env_.catalog = &cluster_.catalog;
    env_.peers = nullptr;  // nothing here asks a node
    env_.executor = nullptr;
    env_.clock = &clock_;
  }

  meta::MemCluster cluster_;
  FakeClock clock_;
  JobEnv env_;
  pb::JobRecord job_;
};

TEST_F(JobContextTest, RetryRecordsWhyAndBacksOffDoublingUpToTheMax) {
  env_.options.retry_min = absl::Milliseconds(200);
  env_.options.retry_max = absl::Seconds(1);
  JobContext ctx(
      env_, [] { return false; }, 0);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(ctx.Retry(&job_, absl::UnavailableError("n2 is down")).ok());
  }
  // 200 + 400 + 800 + 1000 + 1000 ms, on the fake clock: no real wait.
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(3400));
  EXPECT_EQ(job_.error(), "retrying: n2 is down");
  EXPECT_EQ(cluster_.catalog.GetJob(job_.id())->job.error(), "retrying: n2 is down");
  ctx.ResetBackoff();
  ASSERT_TRUE(ctx.Retry(&job_, absl::UnavailableError("again")).ok());
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(3600));
}

TEST_F(JobContextTest, ACancelIsSeenOnceAskedAndAStopAborts) {
  bool stop = false;
  JobContext ctx(
      env_, [&] { return stop; }, 0);
  EXPECT_TRUE(ctx.CheckCancel(job_.id()).ok());
  EXPECT_FALSE(ctx.cancel_seen());
  ASSERT_TRUE(cluster_.catalog.CancelJob(job_.id()).ok());
  EXPECT_TRUE(absl::IsCancelled(ctx.CheckCancel(job_.id())));
  EXPECT_TRUE(ctx.cancel_seen());
  EXPECT_TRUE(ctx.CheckStop().ok());
  stop = true;
  EXPECT_TRUE(absl::IsAborted(ctx.CheckStop()));
}

TEST_F(JobContextTest, ACrashPointStopsTheRunnerThereOnly) {
  env_.options.crash_at = [](const std::string& point) { return point == "fenced"; };
  JobContext ctx(
      env_, [] { return false; }, 0);
  EXPECT_TRUE(ctx.CrashPoint("syncing").ok());
  EXPECT_FALSE(ctx.crashed());
  absl::Status s = ctx.CrashPoint("fenced");
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_TRUE(ctx.crashed());
}

TEST_F(JobContextTest, PacingWaitsOnTheJobsClock) {
  JobContext ctx(
      env_, [] { return false; }, 1 << 20);  // 1 MiB/s
  ctx.Pace(1 << 20);                         // at once: nothing came before it
  EXPECT_EQ(clock_.slept(), absl::ZeroDuration());
  // The next bytes wait for their turn: the first MiB's second, less the
  // 100 ms a rate limiter lets pass at once after an idle spell.
  ctx.Pace(4 << 20);
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(900));
}

}  // namespace
}  // namespace ukai::control
