#include "meta/catalog.h"

#include <gtest/gtest.h>

#include "meta/generations.h"
#include "meta/placement.h"

namespace ukai::meta {
namespace {

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = NewMemMetaTree();
    store_ = NewMemMetaStore(tree_);
    cat_ = std::make_unique<Catalog>(store_.get(), "/ukai");
    ASSERT_TRUE(cat_->Init().ok());
    for (auto [id, site] : {std::pair{"n1", "a"}, {"n2", "a"}, {"n3", "b"}}) {
      pb::NodeInfo n;
      n.set_id(id);
      n.set_site(site);
      ASSERT_TRUE(cat_->RegisterNode(n, pb::NodeLive()).ok());
    }
  }
  absl::StatusOr<pb::DiskSpec> Create(const std::string& name, uint64_t size, int replicas = 2) {
    pb::CreateDiskRequest r;
    r.set_name(name);
    r.set_size(size);
    r.mutable_placement()->set_replicas(replicas);
    return cat_->CreateDisk(r);
  }
  std::shared_ptr<MemMetaTree> tree_;
  std::unique_ptr<MetaStore> store_;
  std::unique_ptr<Catalog> cat_;
};

TEST_F(CatalogTest, CreateMakesANamedDiskWithDefaults) {
  auto d = Create("vm1", 1ull << 40);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->block_size(), kDefaultBlockSize);
  EXPECT_EQ(d->layout_version(), 1u);
  auto got = cat_->GetByName("vm1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id(), d->id());
  EXPECT_TRUE(cat_->ReadChunks(d->id())->empty());  // thin: no pointers yet
}

TEST_F(CatalogTest, CreateRejectsBadInputAndLeavesNothing) {
  EXPECT_TRUE(absl::IsInvalidArgument(Create("bad/name", 1 << 20).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Create("zero", 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Create("odd", 1000).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Create("huge", kMaxDiskSize * 2).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(Create("many", 1 << 20, 4).status()));
  EXPECT_TRUE(cat_->ListNames()->empty());
  EXPECT_TRUE(cat_->ListDiskIds()->empty());
}

TEST_F(CatalogTest, CreateRefusesDuplicateNames) {
  ASSERT_TRUE(Create("vm1", 1 << 20).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(Create("vm1", 1 << 20).status()));
  EXPECT_EQ(cat_->ListDiskIds()->size(), 1u);
}

TEST_F(CatalogTest, ResizeGrowsBumpsLayoutAndRefusesShrink) {
  auto d = Create("vm1", 1 << 20);
  auto r = cat_->Resize("vm1", 2 << 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 2u << 20);
  EXPECT_GT(r->layout_version(), d->layout_version());
  EXPECT_TRUE(absl::IsInvalidArgument(cat_->Resize("vm1", 1 << 20).status()));
  EXPECT_TRUE(absl::IsNotFound(cat_->Resize("nope", 1 << 20).status()));
}

// A failure policy is checked against the placement at create and at every
// change; a bad one leaves nothing (create) or the old one (change).
TEST_F(CatalogTest, FailurePoliciesAreCheckedAndKept) {
  pb::CreateDiskRequest r;
  r.set_name("vm1");
  r.set_size(1 << 20);
  r.mutable_placement()->set_replicas(2);
  r.mutable_failure()->set_min_replicas(3);  // more than the replicas
  EXPECT_TRUE(absl::IsInvalidArgument(cat_->CreateDisk(r).status()));
  EXPECT_TRUE(cat_->ListNames()->empty());
  r.mutable_failure()->set_min_replicas(2);
  r.mutable_failure()->set_hold_ms(5000);
  auto d = cat_->CreateDisk(r);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(cat_->GetByName("vm1")->failure().min_replicas(), 2u);

  pb::FailurePolicy wait;
  wait.set_on_replica_failure(pb::FailurePolicy::WAIT);
  wait.set_min_replicas(1);  // min replicas is for degrade
  EXPECT_TRUE(absl::IsInvalidArgument(cat_->SetFailurePolicy("vm1", wait).status()));
  wait.set_min_replicas(0);
  wait.set_hold_ms(kMaxHoldMs + 1);
  EXPECT_TRUE(absl::IsInvalidArgument(cat_->SetFailurePolicy("vm1", wait).status()));
  EXPECT_EQ(cat_->GetByName("vm1")->failure().hold_ms(), 5000u);  // unchanged
  wait.set_hold_ms(0);
  auto changed = cat_->SetFailurePolicy("vm1", wait);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->failure().on_replica_failure(), pb::FailurePolicy::WAIT);
  EXPECT_EQ(changed->layout_version(), d->layout_version());  // not a layout change
  EXPECT_TRUE(absl::IsNotFound(cat_->SetFailurePolicy("nope", wait).status()));
}

// What a write needs: degrade's minimum (at least 1) or every wanted
// replica, never more than the block's pointer has; the hold's default.
TEST(FailurePolicyTest, ReplicasNeededAndHoldTime) {
  pb::FailurePolicy f;
  EXPECT_EQ(ReplicasNeeded(f, 3, 3), 1u);
  f.set_min_replicas(2);
  EXPECT_EQ(ReplicasNeeded(f, 3, 3), 2u);
  EXPECT_EQ(ReplicasNeeded(f, 3, 1), 1u);
  f.set_on_replica_failure(pb::FailurePolicy::WAIT);
  f.set_min_replicas(0);
  EXPECT_EQ(ReplicasNeeded(f, 3, 3), 3u);
  EXPECT_EQ(ReplicasNeeded(f, 3, 4), 3u);  // a relocation's extra replica is not waited for
  EXPECT_EQ(ReplicasNeeded(f, 3, 2), 2u);
  EXPECT_EQ(HoldMs(f), kDefaultHoldMs);
  f.set_hold_ms(250);
  EXPECT_EQ(HoldMs(f), 250u);
}

TEST_F(CatalogTest, DeleteRefusedWhileOpenForWritingUnlessForced) {
  auto d = Create("vm1", 1 << 20);
  auto host = NewMemMetaStore(tree_);
  ASSERT_TRUE(host->Create(cat_->paths().open(d->id(), "h1"), pb::OpenRecord().SerializeAsString(),
                           CreateMode::kEphemeral)
                  .ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(cat_->BeginDelete("vm1", false).status()));
  auto del = cat_->BeginDelete("vm1", true);
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->state(), pb::DiskSpec::DELETING);
  EXPECT_TRUE(absl::IsNotFound(cat_->LookupName("vm1").status()));
  host.reset();
  EXPECT_TRUE(cat_->FinishDelete(d->id()).ok());
  EXPECT_TRUE(cat_->ListDiskIds()->empty());
}

TEST_F(CatalogTest, AllocateChunkOnceAndMarkStaleBumpsLayout) {
  auto d = Create("vm1", 1ull << 32);
  auto c1 = cat_->AllocateChunk(*d, 0, {"n1", "n2"});
  ASSERT_TRUE(c1.ok());
  auto c2 = cat_->AllocateChunk(*d, 0, {"n3"});  // lost the race: gets the first one
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->chunk.blocks(5).replicas(0).node(), "n1");
  auto spec = cat_->MarkStale(d->id(), 5, "n2");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->layout_version(), d->layout_version() + 1);
  auto c = cat_->ReadChunk(d->id(), 0);
  EXPECT_EQ((*c)->chunk.blocks(5).replicas(1).state(), pb::STALE);
  EXPECT_EQ((*c)->chunk.blocks(6).replicas(1).state(), pb::CLEAN);
  // Marking again changes nothing.
  EXPECT_EQ(cat_->MarkStale(d->id(), 5, "n2")->layout_version(), spec->layout_version());
}

TEST_F(CatalogTest, AShortOrGarbledChunkIsRefusedNotIndexed) {
  auto d = Create("vm1", 1ull << 32);
  ASSERT_TRUE(cat_->AllocateChunk(*d, 0, {"n1", "n2"}).ok());
  const std::string path = cat_->paths().chunk(d->id(), 0);
  pb::BlockChunk short_chunk;
  *short_chunk.add_blocks() = pb::BlockPtr();  // 1 pointer of 1024
  ASSERT_TRUE(store_->Set(path, short_chunk.SerializeAsString(), -1).ok());
  auto c = cat_->ReadChunk(d->id(), 0);
  EXPECT_TRUE(absl::IsDataLoss(c.status())) << c.status();
  EXPECT_NE(c.status().message().find("1 block pointers, not 1024"), std::string::npos);
  EXPECT_TRUE(absl::IsDataLoss(cat_->ReadChunks(d->id()).status()));
  EXPECT_TRUE(absl::IsDataLoss(cat_->MarkStale(d->id(), 5, "n2").status()));
  ASSERT_TRUE(store_->Set(path, "\xff\xff\xff", -1).ok());
  EXPECT_TRUE(absl::IsDataLoss(cat_->ReadChunk(d->id(), 0).status()));
}

TEST_F(CatalogTest, NodeAndJobIdsThatAreNotNamesAreRefusedAndLeaveNothing) {
  for (const std::string& bad :
       std::vector<std::string>{"n1/state", "..", "", "n1\n", std::string(65, 'n')}) {
    auto st = cat_->UpdateNodeState(bad, [](pb::NodeState* s) {
      s->set_draining(true);
      return true;
    });
    EXPECT_TRUE(absl::IsInvalidArgument(st.status())) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(cat_->RemoveNode(bad))) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(cat_->GetJob(bad).status())) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(cat_->CancelJob(bad).status())) << bad;
  }
  EXPECT_TRUE(absl::IsNotFound(store_->Get(cat_->paths().node("n1") + "/state").status()));
  EXPECT_EQ(cat_->ListNodes()->size(), 3u);
}

TEST_F(CatalogTest, FinishedJobsArePrunedByAgeAndCountRunningOnesNever) {
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  auto put = [&](const std::string& id, pb::JobRecord::State state, absl::Duration ago) {
    pb::JobRecord j;
    j.set_id(id);
    j.set_state(state);
    if (state != pb::JobRecord::RUNNING) j.set_finished_ms(absl::ToUnixMillis(now - ago));
    ASSERT_TRUE(store_->Create(cat_->paths().job(id), j.SerializeAsString()).ok());
  };
  put("run", pb::JobRecord::RUNNING, absl::ZeroDuration());
  put("d1", pb::JobRecord::DONE, absl::Minutes(10));
  put("d2", pb::JobRecord::DONE, absl::Minutes(20));
  put("f3", pb::JobRecord::FAILED, absl::Minutes(30));  // third newest: over the count
  put("d4", pb::JobRecord::DONE, absl::Hours(2));       // over the age
  ASSERT_TRUE(store_->Create(cat_->paths().job_runner("d4"), "n1").ok());  // a stale claim
  JobRetention r;
  r.keep = absl::Hours(1);
  r.keep_max = 2;
  EXPECT_EQ(*cat_->PruneJobs(r, now), 2);
  auto jobs = cat_->ListJobs();
  ASSERT_TRUE(jobs.ok());
  std::set<std::string> left;
  for (const auto& j : *jobs) left.insert(j.id());
  EXPECT_EQ(left, (std::set<std::string>{"run", "d1", "d2"}));
  EXPECT_EQ(*cat_->PruneJobs(r, now), 0);
  EXPECT_EQ(*cat_->PruneJobs(r, now + absl::Hours(24 * 30)), 2);  // the running one stays
  EXPECT_EQ(cat_->ListJobs()->size(), 1u);
}

TEST_F(CatalogTest, WriterEpochsIncrease) {
  auto d = Create("vm1", 1 << 20);
  EXPECT_EQ(*cat_->TakeWriterEpoch(d->id(), "h1", "a"), 1u);
  EXPECT_EQ(*cat_->TakeWriterEpoch(d->id(), "h2", "b"), 2u);
  EXPECT_EQ(cat_->Writer(d->id())->host(), "h2");
}

TEST_F(CatalogTest, RegisterRefusesASecondLiveNodeWithTheSameId) {
  auto other = NewMemMetaStore(tree_);
  Catalog c2(other.get(), "/ukai");
  pb::NodeInfo n;
  n.set_id("n1");
  EXPECT_TRUE(absl::IsAlreadyExists(c2.RegisterNode(n, pb::NodeLive())));
}

TEST_F(CatalogTest, ASnapshotFreezesTheGenerationInOneStep) {
  auto d = Create("vm1", 1 << 30);
  ASSERT_TRUE(cat_->AllocateChunk(*d, 0, {"n1", "n2"}).ok());
  auto s = cat_->CreateSnapshot("vm1", "s1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->generation(), 1u);
  EXPECT_EQ(s->layout_version(), d->layout_version() + 1);
  ASSERT_EQ(s->snapshots_size(), 1);
  EXPECT_EQ(s->snapshots(0).generation(), 0u);
  EXPECT_EQ(s->snapshots(0).size(), 1u << 30);
  // The block table is untouched: no data copied, no pointer rewritten.
  EXPECT_EQ((*cat_->ReadChunk(d->id(), 0))->version, 0);
  // A chunk allocated later begins at the new generation.
  ASSERT_TRUE(cat_->AllocateChunk(*s, 1, {"n1", "n2"}).ok());
  EXPECT_EQ((*cat_->ReadChunk(d->id(), 1))->chunk.blocks(0).generation(), 1u);
}

TEST_F(CatalogTest, SnapshotBadInputChangesNothing) {
  auto d = Create("vm1", 1 << 20);
  ASSERT_TRUE(cat_->CreateSnapshot("vm1", "s1").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(cat_->CreateSnapshot("vm1", "s1").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(cat_->CreateSnapshot("vm1", "a@b").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(cat_->CreateSnapshot("vm1", "").status()));
  EXPECT_TRUE(absl::IsNotFound(cat_->CreateSnapshot("nope", "s1").status()));
  EXPECT_TRUE(absl::IsNotFound(cat_->DeleteSnapshot("vm1", "s2").status()));
  EXPECT_TRUE(absl::IsNotFound(cat_->CloneDisk("vm1", "s2", "c", {}).status()));
  EXPECT_EQ(cat_->GetByName("vm1")->snapshots_size(), 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(cat_->BeginDelete("vm1", false).status()));
}

TEST_F(CatalogTest, DeletingASnapshotPrunesWhatOnlyItKept) {
  auto d = Create("vm1", 1 << 30);
  ASSERT_TRUE(cat_->AllocateChunk(*d, 0, {"n1", "n2"}).ok());
  auto s = cat_->CreateSnapshot("vm1", "s1");
  ASSERT_TRUE(s.ok());
  // A write after the snapshot moved block 3 to a new object.
  ASSERT_TRUE(cat_->UpdateChunk(d->id(), 0,
                                [&](pb::BlockChunk* c) -> absl::StatusOr<bool> {
                                  Advance(c->mutable_blocks(3), s->generation(), *s);
                                  return true;
                                })
                  .ok());
  EXPECT_EQ((*cat_->ReadChunk(d->id(), 0))->chunk.blocks(3).kept_size(), 1);
  auto after = cat_->DeleteSnapshot("vm1", "s1");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->snapshots_size(), 0);
  auto c = cat_->ReadChunk(d->id(), 0);
  EXPECT_EQ((*c)->chunk.blocks(3).kept_size(), 0);
  EXPECT_EQ((*c)->chunk.blocks(3).generation(), 1u);
  EXPECT_TRUE(cat_->BeginDelete("vm1", false).ok());
}

TEST_F(CatalogTest, ACloneHoldsItsParentSnapshotUntilItGoes) {
  auto d = Create("gold", 1 << 30);
  ASSERT_TRUE(cat_->CreateSnapshot("gold", "base").ok());
  ASSERT_TRUE(cat_->Resize("gold", 2u << 30).ok());  // the clone keeps the snapshot's size
  auto c = cat_->CloneDisk("gold", "base", "vm7", {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->size(), 1u << 30);
  EXPECT_EQ(c->block_size(), d->block_size());
  EXPECT_EQ(c->parent().disk_id(), d->id());
  EXPECT_EQ(c->parent().generation(), 0u);
  EXPECT_EQ(c->parent().depth(), 1u);
  EXPECT_EQ(c->placement().replicas(), 2u);
  EXPECT_EQ(cat_->GetByName("gold")->snapshots(0).clones(0), c->id());
  auto del = cat_->DeleteSnapshot("gold", "base");
  EXPECT_TRUE(absl::IsFailedPrecondition(del.status()));
  EXPECT_NE(del.status().message().find("vm7"), std::string::npos) << del.status();
  EXPECT_TRUE(absl::IsAlreadyExists(cat_->CloneDisk("gold", "base", "vm7", {}).status()));
  // Its blocks read through until written.
  ASSERT_TRUE(cat_->AllocateChunk(*c, 0, {"n1", "n2"}).ok());
  EXPECT_TRUE((*cat_->ReadChunk(c->id(), 0))->chunk.blocks(0).inherited());
  // A clone of the clone is one deeper.
  ASSERT_TRUE(cat_->CreateSnapshot("vm7", "s").ok());
  EXPECT_EQ(cat_->CloneDisk("vm7", "s", "vm8", {})->parent().depth(), 2u);
  // Deleting the clone lets go of the parent's snapshot.
  ASSERT_TRUE(cat_->BeginDelete("vm8", false).ok());
  ASSERT_TRUE(cat_->DeleteSnapshot("vm7", "s").ok());
  ASSERT_TRUE(cat_->BeginDelete("vm7", false).ok());
  EXPECT_EQ(cat_->GetByName("gold")->snapshots(0).clones_size(), 0);
  EXPECT_TRUE(cat_->DeleteSnapshot("gold", "base").ok());
}

TEST_F(CatalogTest, DetachingAParentFreesItsSnapshot) {
  ASSERT_TRUE(Create("gold", 1 << 30).ok());
  ASSERT_TRUE(cat_->CreateSnapshot("gold", "base").ok());
  auto c = cat_->CloneDisk("gold", "base", "vm7", {});
  ASSERT_TRUE(c.ok());
  auto flat = cat_->DetachParent(c->id());
  ASSERT_TRUE(flat.ok());
  EXPECT_FALSE(flat->has_parent());
  EXPECT_GT(flat->layout_version(), c->layout_version());
  EXPECT_TRUE(cat_->DeleteSnapshot("gold", "base").ok());
}

}  // namespace
}  // namespace ukai::meta
