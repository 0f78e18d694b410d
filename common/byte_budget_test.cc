#include "common/byte_budget.h"

#include <gtest/gtest.h>

#include <thread>

namespace ukai {
namespace {

TEST(ByteBudget, TakesUpToItsLimitAndAWaiterGetsWhatIsGivenBack) {
  ByteBudget b(100);
  ASSERT_TRUE(b.Take(60, absl::InfinitePast()));
  EXPECT_FALSE(b.Take(50, absl::InfinitePast()));  // no room, no waiting
  EXPECT_EQ(b.used(), 60u);
  std::thread waiter([&] { EXPECT_TRUE(b.Take(50, absl::InfiniteFuture())); });
  b.Give(60);
  waiter.join();
  EXPECT_EQ(b.used(), 50u);
}

TEST(ByteBudget, MoreThanTheLimitNeverFitsAndCloseWakesWaiters) {
  ByteBudget b(100);
  EXPECT_FALSE(b.Take(101, absl::InfiniteFuture()));  // returns at once
  ASSERT_TRUE(b.Take(100, absl::InfinitePast()));
  std::thread waiter([&] { EXPECT_FALSE(b.Take(1, absl::InfiniteFuture())); });
  b.Close();
  waiter.join();
  b.Give(100);
  EXPECT_FALSE(b.Take(1, absl::InfiniteFuture()));
  EXPECT_EQ(b.used(), 0u);
}

}  // namespace
}  // namespace ukai
