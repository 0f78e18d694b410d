#include "common/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/clock.h"

namespace ukai {
namespace {

TEST(ExecutorTest, RunsWhatItTakesAndRefusesPastItsQueue) {
  absl::Notification started, release;
  std::atomic<int> ran{0};
  int taken = 0;
  {
    Executor ex("test", 1, 2);
    ASSERT_TRUE(ex.TrySchedule([&] {
      started.Notify();
      release.WaitForNotification();
      ++ran;
    }));
    started.WaitForNotification();
    // The one thread is busy; two more wait in the queue, the rest are refused.
    for (int i = 0; i < 10; ++i) taken += ex.TrySchedule([&] { ++ran; });
    EXPECT_EQ(taken, 2);
    EXPECT_EQ(ex.threads(), 1u);
    release.Notify();
  }  // the destructor runs what was queued before it joins
  EXPECT_EQ(ran, taken + 1);
}

TEST(ExecutorTest, StartsNoMoreThreadsThanItsLimit) {
  Executor ex("test", 3, 100);
  absl::Notification release;
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(ex.TrySchedule([&] { release.WaitForNotification(); }));
  EXPECT_EQ(ex.threads(), 3u);
  release.Notify();
}

TEST(ParallelForTest, CallsEveryIndexOnceAtMostWidthAtOnce) {
  Executor ex("test", 8, 100);
  std::vector<std::atomic<int>> seen(100);
  std::atomic<int> now{0}, peak{0};
  ParallelFor(&ex, seen.size(), 3, [&](size_t i) {
    int n = ++now;
    for (int p = peak; n > p && !peak.compare_exchange_weak(p, n);) {
    }
    ++seen[i];
    --now;
  });
  for (auto& s : seen) EXPECT_EQ(s, 1);
  EXPECT_LE(peak, 3);
}

TEST(ParallelForTest, NeverWaitsForAPoolThatIsFullOrItsOwn) {
  // One thread, no queue room: a ParallelFor inside its only task must not
  // wait for helpers that can never start.
  Executor ex("test", 1, 1);
  absl::Notification done;
  std::atomic<int> calls{0};
  ASSERT_TRUE(ex.TrySchedule([&] {
    ParallelFor(&ex, 50, 4, [&](size_t) { ++calls; });
    done.Notify();
  }));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(calls, 50);
}

TEST(ParallelForTest, WithoutAnExecutorRunsOnTheCaller) {
  int calls = 0;
  ParallelFor(nullptr, 7, 4, [&](size_t) { ++calls; });
  EXPECT_EQ(calls, 7);
}

TEST(FakeClockTest, SleepingMovesTimeOnWithoutWaiting) {
  FakeClock clock;
  const absl::Time start = clock.Now();
  clock.SleepFor(absl::Hours(2));
  clock.SleepFor(-absl::Seconds(1));
  EXPECT_EQ(clock.Now() - start, absl::Hours(2));
  EXPECT_EQ(clock.slept(), absl::Hours(2));
}

}  // namespace
}  // namespace ukai
