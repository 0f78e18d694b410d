#include "meta/generations.h"

#include <gtest/gtest.h>

namespace ukai::meta {
namespace {

pb::DiskSpec WithSnapshots(std::initializer_list<uint64_t> gens, uint64_t current) {
  pb::DiskSpec spec;
  for (uint64_t g : gens) spec.add_snapshots()->set_generation(g);
  spec.set_generation(current);
  return spec;
}

pb::BlockPtr Ptr(uint64_t gen, bool inherited = false) {
  pb::BlockPtr p;
  p.set_generation(gen);
  p.set_inherited(inherited);
  return p;
}

void ExpectObject(const BlockView& v, uint64_t gen) {
  EXPECT_EQ(v.kind, BlockView::kObject);
  EXPECT_EQ(v.generation, gen);
}

TEST(GenerationsTest, AWriteAfterASnapshotCopiesAndTheSnapshotKeepsTheOldObject) {
  pb::DiskSpec spec = WithSnapshots({}, 0);
  pb::BlockPtr p = Ptr(0);
  EXPECT_FALSE(NeedsNewObject(p, spec));  // no snapshot: written in place
  spec = WithSnapshots({0}, 1);           // snapshot s0 froze generation 0
  ASSERT_TRUE(NeedsNewObject(p, spec));
  Advance(&p, 1, spec);
  ExpectObject(ViewOf(p, kLiveView, false), 1);
  ExpectObject(ViewOf(p, 0, false), 0);
  EXPECT_EQ(OwnObjects(p), (std::vector<uint64_t>{0, 1}));
  EXPECT_FALSE(NeedsNewObject(p, spec));  // the new object is the live disk's alone
}

TEST(GenerationsTest, BlocksAllocatedAfterASnapshotReadAsZerosInIt) {
  pb::DiskSpec spec = WithSnapshots({3}, 4);
  pb::BlockPtr p = Ptr(4);  // allocated at the current generation
  EXPECT_EQ(ViewOf(p, 3, false).kind, BlockView::kZeros);
  EXPECT_EQ(ViewOf(p, 3, true).kind, BlockView::kParent);
  EXPECT_FALSE(NeedsNewObject(p, spec));
}

TEST(GenerationsTest, AnObjectUnchangedSinceTwoSnapshotsIsKeptOnceForBoth) {
  pb::DiskSpec spec = WithSnapshots({0, 1, 2}, 3);
  pb::BlockPtr p = Ptr(0);
  Advance(&p, 3, spec);
  ASSERT_EQ(p.kept_size(), 1);
  for (uint64_t s : {0, 1, 2}) ExpectObject(ViewOf(p, s, false), 0);
  // Deleting two of the three still keeps it; the last one frees it.
  spec = WithSnapshots({2}, 3);
  EXPECT_FALSE(Prune(&p, spec));
  EXPECT_TRUE(ExclusiveTo(p, spec, 2));
  spec = WithSnapshots({}, 3);
  EXPECT_TRUE(Prune(&p, spec));
  EXPECT_EQ(OwnObjects(p), (std::vector<uint64_t>{3}));
}

TEST(GenerationsTest, PruneDropsOnlyWhatNoSnapshotReads) {
  // Objects 0, 2, 5 and current 7; snapshots at 1 (reads 0) and 6 (reads 5).
  pb::DiskSpec spec = WithSnapshots({1, 6}, 7);
  pb::BlockPtr p = Ptr(7);
  for (uint64_t g : {0, 2, 5}) p.add_kept()->set_generation(g);
  EXPECT_TRUE(Prune(&p, spec));
  ASSERT_EQ(p.kept_size(), 2);
  EXPECT_EQ(p.kept(0).generation(), 0u);
  EXPECT_EQ(p.kept(1).generation(), 5u);
  ExpectObject(ViewOf(p, 1, false), 0);
  ExpectObject(ViewOf(p, 6, false), 5);
  EXPECT_TRUE(ExclusiveTo(p, spec, 1));
  EXPECT_FALSE(ExclusiveTo(p, WithSnapshots({1, 6, 7}, 8), 7));  // the live disk's
}

TEST(GenerationsTest, ACloneBlockReadsThroughUntilItsFirstWrite) {
  pb::DiskSpec spec = WithSnapshots({}, 0);
  spec.mutable_parent()->set_disk_id(1);
  pb::BlockPtr p = Ptr(0, /*inherited=*/true);
  EXPECT_EQ(ViewOf(p, kLiveView, true).kind, BlockView::kParent);
  EXPECT_TRUE(OwnObjects(p).empty());
  ASSERT_TRUE(NeedsNewObject(p, spec));
  Advance(&p, 0, spec);
  ExpectObject(ViewOf(p, kLiveView, true), 0);
  EXPECT_EQ(p.kept_size(), 0);  // nothing read the inherited state
}

TEST(GenerationsTest, AnInheritedStateASnapshotReadsIsKept) {
  pb::DiskSpec spec = WithSnapshots({0}, 1);
  spec.mutable_parent()->set_disk_id(1);
  pb::BlockPtr p = Ptr(0, /*inherited=*/true);
  Advance(&p, 1, spec);
  // With nothing older, the inherited state reads as "not allocated": the
  // parent all the same, and nothing is kept.
  EXPECT_EQ(ViewOf(p, 0, true).kind, BlockView::kParent);
  EXPECT_EQ(p.kept_size(), 0);
  // Older own objects make it count: the snapshot must not see them.
  pb::BlockPtr q = Ptr(2, /*inherited=*/true);
  q.add_kept()->set_generation(0);
  spec = WithSnapshots({0, 2}, 3);
  spec.mutable_parent()->set_disk_id(1);
  Advance(&q, 3, spec);
  ExpectObject(ViewOf(q, 0, true), 0);
  EXPECT_EQ(ViewOf(q, 2, true).kind, BlockView::kParent);
  ExpectObject(ViewOf(q, kLiveView, true), 3);
}

}  // namespace
}  // namespace ukai::meta
