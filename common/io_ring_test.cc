#include "common/io_ring.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace ukai {
namespace {

class Reads : public DiskReads {
 public:
  std::vector<std::string> bufs;
};

class IoRingTest : public testing::Test {
 protected:
  void SetUp() override {
    auto r = IoRing::Start(8);                // small, so batches overrun the ring
    if (!r.ok()) GTEST_SKIP() << r.status();  // the kernel refuses io_uring here
    ring_ = std::move(*r);
    path_ = absl::StrCat(testing::TempDir(), "/ukai-ioring-", getpid());
    fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd_, 0);
    for (int i = 0; i < 64; ++i) content_ += std::string(4096, static_cast<char>('a' + i % 26));
    ASSERT_EQ(pwrite(fd_, content_.data(), content_.size(), 0),
              static_cast<ssize_t>(content_.size()));
  }
  void TearDown() override {
    ring_.reset();
    if (fd_ >= 0) close(fd_);
    if (!path_.empty()) unlink(path_.c_str());
  }
  // Reads `ranges` (fd, offset, len) and waits for the callback.
  std::unique_ptr<Reads> ReadAll(const std::vector<std::tuple<int, uint64_t, uint32_t>>& ranges) {
    auto r = std::make_unique<Reads>();
    r->bufs.resize(ranges.size());
    for (size_t i = 0; i < ranges.size(); ++i) {
      auto [fd, off, len] = ranges[i];
      r->bufs[i].assign(len, '\0');
      r->ranges.push_back({fd, off, r->bufs[i].data(), len});
    }
    auto got = std::make_shared<std::unique_ptr<Reads>>();
    absl::Notification done;
    // The callback sees the reads; copy what it saw so the test can check it
    // after the ring destroys them.
    ring_->Read(std::move(r), [&, got](DiskReads& d) {
      auto copy = std::make_unique<Reads>(static_cast<Reads&>(d));
      for (size_t i = 0; i < copy->ranges.size(); ++i) copy->ranges[i].buf = copy->bufs[i].data();
      *got = std::move(copy);
      done.Notify();
    });
    done.WaitForNotification();
    return std::move(*got);
  }

  std::unique_ptr<IoRing> ring_;
  std::string path_, content_;
  int fd_ = -1;
};

TEST_F(IoRingTest, ReadsEveryRangeAtItsOffset) {
  auto r = ReadAll({{fd_, 0, 4096}, {fd_, 8192, 12288}, {fd_, 100, 10}});
  ASSERT_EQ(r->ranges.size(), 3u);
  EXPECT_EQ(r->bufs[0], content_.substr(0, 4096));
  EXPECT_EQ(r->bufs[1], content_.substr(8192, 12288));
  EXPECT_EQ(r->bufs[2], content_.substr(100, 10));
  for (const auto& g : r->ranges) {
    EXPECT_EQ(g.done, g.len);
    EXPECT_EQ(g.error, 0);
  }
}

TEST_F(IoRingTest, EndOfFileAndBadFdAreReportedPerRange) {
  auto r = ReadAll({{fd_, content_.size() - 100, 4096}, {-1, 0, 4096}, {fd_, 0, 0}});
  EXPECT_EQ(r->ranges[0].done, 100u);
  EXPECT_EQ(r->ranges[0].error, 0);
  EXPECT_EQ(r->bufs[0].substr(0, 100), content_.substr(content_.size() - 100));
  EXPECT_EQ(r->ranges[1].error, EBADF);
  EXPECT_EQ(r->ranges[2].done, 0u);  // empty: nothing to read, still answered
}

// More reads at once than the ring has entries, from many threads: every
// callback runs once with its own data.
TEST_F(IoRingTest, ManyConcurrentBatchesAllComplete) {
  constexpr int kThreads = 4, kPerThread = 200;
  std::atomic<int> ok{0}, calls{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      std::vector<std::unique_ptr<absl::Notification>> dones;
      for (int i = 0; i < kPerThread; ++i) {
        auto r = std::make_unique<Reads>();
        const int page = (t * kPerThread + i) % 64;
        r->bufs.assign(3, std::string(4096, '\0'));
        for (int k = 0; k < 3; ++k) {
          r->ranges.push_back({fd_, uint64_t((page + k) % 64) * 4096, r->bufs[k].data(), 4096});
        }
        dones.push_back(std::make_unique<absl::Notification>());
        absl::Notification* n = dones.back().get();
        ring_->Read(std::move(r), [&, n, page](DiskReads& d) {
          auto& rr = static_cast<Reads&>(d);
          bool good = true;
          for (int k = 0; k < 3; ++k) {
            good = good && rr.bufs[k] == content_.substr(((page + k) % 64) * 4096, 4096);
          }
          if (good) ++ok;
          ++calls;
          n->Notify();
        });
      }
      for (auto& n : dones) n->WaitForNotification();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(calls.load(), kThreads * kPerThread);
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
}

// Destroying the ring runs the callbacks of everything queued before.
TEST_F(IoRingTest, StoppingFinishesWhatWasQueued) {
  std::atomic<int> calls{0};
  for (int i = 0; i < 50; ++i) {
    auto r = std::make_unique<Reads>();
    r->bufs.assign(1, std::string(4096, '\0'));
    r->ranges.push_back({fd_, 0, r->bufs[0].data(), 4096});
    ring_->Read(std::move(r), [&](DiskReads&) { ++calls; });
  }
  ring_.reset();
  EXPECT_EQ(calls.load(), 50);
}

}  // namespace
}  // namespace ukai
