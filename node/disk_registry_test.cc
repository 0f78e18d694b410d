#include "node/disk_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"
#include "meta/mem_cluster_testing.h"
#include "node/block_io.h"

namespace ukai::node {
namespace {

class DiskRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mc_.ok);
    store_ = std::make_unique<BlockStore>(std::make_unique<MemPageStore>());
    spec_ = *mc_.CreateDisk("d", 8 << 20);
    reg_ = std::make_unique<DiskRegistry>(cat_, store_.get());
    ASSERT_TRUE(reg_->Start().ok());
  }
  pb::IoHeader Hdr(uint64_t layout, uint64_t epoch = 0) {
    pb::IoHeader h;
    h.set_disk_id(spec_.id());
    h.set_layout_version(layout);
    h.set_epoch(epoch);
    return h;
  }
  meta::MemCluster mc_;
  meta::Catalog* cat_ = &mc_.catalog;
  std::shared_ptr<meta::MemMetaTree>& tree_ = mc_.tree;
  std::unique_ptr<BlockStore> store_;
  std::unique_ptr<DiskRegistry> reg_;
  pb::DiskSpec spec_;
};

TEST_F(DiskRegistryTest, AdmitsCurrentLayoutAndReturnsGeometry) {
  auto g = reg_->Admit(Hdr(1), false);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->size, 8u << 20);
}

TEST_F(DiskRegistryTest, RejectsOlderLayoutAfterResize) {
  auto r = cat_->Resize("d", 16 << 20);
  ASSERT_TRUE(r.ok());
  // A client that saw the resize brings the new version: the node re-reads.
  auto g = reg_->Admit(Hdr(r->layout_version()), false);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->size, 16u << 20);
  EXPECT_TRUE(absl::IsFailedPrecondition(reg_->Admit(Hdr(1), false).status()));
}

TEST_F(DiskRegistryTest, FencesOlderWriterEpochsAndUntakenOnes) {
  uint64_t e1 = *cat_->TakeWriterEpoch(spec_.id(), "h1", "a");
  EXPECT_TRUE(reg_->Admit(Hdr(1, e1), true).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(reg_->Admit(Hdr(1, 0), true).status()));
  EXPECT_TRUE(absl::IsPermissionDenied(reg_->Admit(Hdr(1, e1 + 5), true).status()));
  uint64_t e2 = *cat_->TakeWriterEpoch(spec_.id(), "h2", "a");
  EXPECT_TRUE(reg_->Admit(Hdr(1, e2), true).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(reg_->Admit(Hdr(1, e1), true).status()));
  EXPECT_TRUE(reg_->Admit(Hdr(1, 0), false).ok());  // readers need no epoch
}

TEST_F(DiskRegistryTest, FenceWaitsForRequestsUnderOlderLayouts) {
  auto old_req = reg_->AdmitIo(Hdr(1), false);
  ASSERT_TRUE(old_req.ok());
  auto r = cat_->Resize("d", 16 << 20);  // any layout change: version 2
  ASSERT_TRUE(r.ok());
  const uint64_t v = r->layout_version();
  // Not in ZooKeeper yet: refused, not waited for.
  EXPECT_TRUE(absl::IsFailedPrecondition(reg_->Fence(spec_.id(), v + 1, absl::Seconds(1))));
  // An old request still running: the fence times out...
  EXPECT_TRUE(absl::IsDeadlineExceeded(reg_->Fence(spec_.id(), v, absl::Milliseconds(50))));
  // ...and from now on old layouts are turned away.
  EXPECT_TRUE(absl::IsFailedPrecondition(reg_->AdmitIo(Hdr(1), false).status()));
  // A request under the new layout does not hold the fence up.
  auto new_req = reg_->AdmitIo(Hdr(v), false);
  ASSERT_TRUE(new_req.ok());
  std::atomic<bool> fenced{false};
  std::thread t([&] {
    EXPECT_TRUE(reg_->Fence(spec_.id(), v, absl::Seconds(10)).ok());
    fenced = true;
  });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(fenced);
  *old_req = Admission();  // the old request ends
  t.join();
  EXPECT_TRUE(fenced);
  EXPECT_TRUE(reg_->Fence(spec_.id(), v, absl::Milliseconds(1)).ok());
  EXPECT_TRUE(absl::IsNotFound(reg_->Fence(999, 1, absl::Milliseconds(1))));
}

TEST_F(DiskRegistryTest, UnknownAndDeletingDisksAreNotFound) {
  pb::IoHeader h = Hdr(1);
  h.set_disk_id(999);
  EXPECT_TRUE(absl::IsNotFound(reg_->Admit(h, false).status()));
  auto del = cat_->BeginDelete("d", false);
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(absl::IsNotFound(reg_->Admit(Hdr(del->layout_version()), false).status()));
}

TEST_F(DiskRegistryTest, StartDropsDataOfDisksDeletedWhileDown) {
  ASSERT_TRUE(store_->Write({spec_.id(), 0, 0}, 0, std::string(4096, 'x')).ok());
  ASSERT_TRUE(store_->Write({4242, 0, 0}, 0, std::string(4096, 'y')).ok());  // not in catalog
  DiskRegistry fresh(cat_, store_.get());
  ASSERT_TRUE(fresh.Start().ok());
  auto bytes = *store_->DiskBytes();
  EXPECT_EQ(bytes.count(4242), 0u);
  EXPECT_EQ(bytes[spec_.id()], 4096u);
}

TEST_F(DiskRegistryTest, KeepsOneWatchPerRecordHoweverOftenItChanges) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(cat_->Resize("d", (9 + i) << 20).ok());
    ASSERT_TRUE(cat_->TakeWriterEpoch(spec_.id(), "h", "a").ok());
  }
  // Each fired watch re-arms from the callback thread; that re-arming fires
  // nothing new, so one drain settles everything.
  meta::DrainMemCallbacks(*tree_);
  EXPECT_EQ(meta::CountMemWatches(*tree_, cat_->paths().disk(spec_.id())), 1u);
  EXPECT_EQ(meta::CountMemWatches(*tree_, cat_->paths().writer(spec_.id())), 1u);
}

TEST_F(DiskRegistryTest, UnknownDiskIdsLeaveNoWatchAndNewDisksAreFound) {
  pb::IoHeader h = Hdr(1);
  for (uint64_t id = spec_.id() + 1000; id < spec_.id() + 1120; ++id) {  // never made
    h.set_disk_id(id);
    EXPECT_TRUE(absl::IsNotFound(reg_->Admit(h, false).status()));
  }
  meta::DrainMemCallbacks(*tree_);
  EXPECT_EQ(meta::CountMemWatches(*tree_, cat_->paths().disk(spec_.id() + 1000)), 0u);
  EXPECT_EQ(meta::CountMemWatches(*tree_, cat_->paths().disk(spec_.id() + 1119)), 0u);
  // A disk made since: found, whether or not the listing has caught up.
  auto made = mc_.CreateDisk("later", 8 << 20);
  ASSERT_TRUE(made.ok());
  h.set_disk_id(made->id());
  EXPECT_TRUE(reg_->Admit(h, false).ok());
  // A deleted one, below the newest listed: gone, from the listing alone.
  auto third = mc_.CreateDisk("third", 8 << 20);
  ASSERT_TRUE(third.ok());
  ASSERT_TRUE(cat_->BeginDelete("later", /*force=*/true).ok());
  ASSERT_TRUE(cat_->FinishDelete(made->id()).ok());
  meta::DrainMemCallbacks(*tree_);
  EXPECT_TRUE(absl::IsNotFound(reg_->Admit(h, false).status()));
  EXPECT_EQ(meta::CountMemWatches(*tree_, cat_->paths().disk(made->id())), 0u);
  EXPECT_TRUE(reg_->Admit(Hdr(1), false).ok());
}

TEST(CheckRangeTest, RejectsRangesOutsideBlockOrDisk) {
  DiskGeometry g{10 << 20, 4 << 20};  // 2.5 blocks
  EXPECT_TRUE(CheckRange(1, g, 0, 0, 4 << 20).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(CheckRange(1, g, 0, 1, 4 << 20)));
  EXPECT_TRUE(absl::IsInvalidArgument(CheckRange(1, g, 0, 0, 0)));
  EXPECT_TRUE(CheckRange(1, g, 2, 0, 2 << 20).ok());
  EXPECT_TRUE(absl::IsOutOfRange(CheckRange(1, g, 2, 0, (2 << 20) + 1)));
  EXPECT_TRUE(absl::IsOutOfRange(CheckRange(1, g, 3, 0, 512)));
}

}  // namespace
}  // namespace ukai::node
