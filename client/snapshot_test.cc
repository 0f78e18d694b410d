// Snapshots and clones on libukai's data path, against real node services on
// in-memory stores (testing/volume_fixture.h): copy-on-write on the nodes,
// snapshot views, clones reading through to their parent and copying a
// block up on its first write, and space given back when a snapshot goes.
#include <gtest/gtest.h>

#include <thread>

#include "testing/snapshot_fixture.h"

namespace ukai::client {
namespace {

using harness::kBlock;
using harness::Pattern;
using harness::SnapshotTest;
using harness::TestNode;

TEST_F(SnapshotTest, ASnapshotKeepsWhatWasWrittenBeforeItWhileTheDiskMovesOn) {
  auto d = CreateDisk("d", 8 * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  auto vol = Open(host, "d", true);
  const std::string before = Pattern(3 * kBlock, 1);
  Put(*vol, 0, before);  // blocks 0-2
  Snapshot("d", "s1");
  const std::string after = Pattern(5000, 2);
  Put(*vol, kBlock - 1000, after);            // blocks 0 and 1, partly
  Put(*vol, 5 * kBlock, Pattern(kBlock, 3));  // block 5, first written now

  std::string want_live = before;
  want_live.replace(kBlock - 1000, after.size(), after);
  EXPECT_EQ(ReadAll(*vol, 0, 3 * kBlock), want_live);

  auto snap = Open(host, "d@s1", false);
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->size(), 8u * kBlock);
  EXPECT_EQ(ReadAll(*snap, 0, 3 * kBlock), before);
  EXPECT_EQ(ReadAll(*snap, 5 * kBlock, kBlock), std::string(kBlock, '\0'));
  auto [status, async] = ReadAsyncAll(*snap, kBlock - 1000, 5000);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(async, before.substr(kBlock - 1000, 5000));

  // Only the blocks written after the snapshot got a second object, on
  // both replicas; block 2 and the new block 5 have one each.
  const std::vector<std::pair<uint64_t, uint64_t>> want = {{0, 0}, {0, 1}, {1, 0},
                                                           {1, 1}, {2, 0}, {5, 1}};
  EXPECT_EQ(ObjectsOn("n1", d.id()), want);
  EXPECT_EQ(ObjectsOn("n2", d.id()), want);
  // And a second write to the same block copies nothing more.
  Put(*vol, 0, Pattern(100, 4));
  EXPECT_EQ(ObjectsOn("n1", d.id()), want);
}

TEST_F(SnapshotTest, ManyWritesRightAfterASnapshotAllLandAndTheSnapshotHolds) {
  // 16 writers at once over 64 blocks of one chunk: most writes copy their
  // block on write, and the pointer switches of one chunk go together.
  constexpr int kBlocks = 64, kThreads = 16;
  auto d = CreateDisk("d", kBlocks * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  auto vol = Open(host, "d", true);
  const std::string before = Pattern(kBlocks * kBlock, 70);
  Put(*vol, 0, before);
  Snapshot("d", "s1");
  std::string want = before;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = t; b < kBlocks; b += kThreads) {
        const std::string piece = Pattern(4096, 100 + b);
        absl::Status s = vol->Write(uint64_t(b) * kBlock + 8192, piece.data(), piece.size());
        if (!s.ok()) {
          results[t] = s;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r;
  for (int b = 0; b < kBlocks; ++b)
    want.replace(uint64_t(b) * kBlock + 8192, 4096, Pattern(4096, 100 + b));
  EXPECT_EQ(ReadAll(*vol, 0, kBlocks * kBlock), want);
  EXPECT_EQ(ReadAll(**host->Open("d@s1", false), 0, kBlocks * kBlock), before);
  EXPECT_EQ(StateOf(d, 0, "n1"), pb::CLEAN);
  EXPECT_EQ(StateOf(d, 0, "n2"), pb::CLEAN);
}

TEST_F(SnapshotTest, SnapshotsAreReadOnlyAndBadNamesAreRefused) {
  CreateDisk("d", 4 * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  Snapshot("d", "s1");
  auto w = host->Open("d@s1", true);
  EXPECT_TRUE(absl::IsFailedPrecondition(w.status())) << w.status();
  EXPECT_TRUE(absl::IsNotFound(host->Open("d@nope", false).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(host->Open("d@", false).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(host->Open("d@a@b", false).status()));
  auto snap = Open(host, "d@s1", false);
  std::string x(10, 'x');
  EXPECT_TRUE(absl::IsFailedPrecondition(snap->Write(0, x.data(), x.size())));
  auto attr = host->Stat("d@s1");
  ASSERT_TRUE(attr.ok()) << attr.status();
  EXPECT_TRUE(attr->snapshot);
  EXPECT_EQ(attr->name, "d@s1");
  EXPECT_EQ(*host->ListSnapshots("d"), std::vector<std::string>{"s1"});
}

TEST_F(SnapshotTest, DeletingASnapshotFreesOnlyWhatNoOtherViewReads) {
  auto d = CreateDisk("d", 4 * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  auto vol = Open(host, "d", true);
  const std::string v0 = Pattern(2 * kBlock, 10);
  Put(*vol, 0, v0);     // blocks 0, 1 at generation 0
  Snapshot("d", "s1");  // reads 0/0, 1/0
  const std::string v1 = Pattern(kBlock, 11);
  Put(*vol, 0, v1);     // block 0 -> generation 1
  Snapshot("d", "s2");  // reads 0/1, 1/0
  const std::string v2 = Pattern(2 * kBlock, 12);
  Put(*vol, 0, v2);  // blocks 0, 1 -> generation 2
  ASSERT_TRUE(admin_->DeleteSnapshot("d", "s1").ok());
  for (auto& [id, n] : nodes_) ASSERT_TRUE(n->copy->CollectDisk(d.id()).ok()) << id;
  // 0/0 went (only s1 read it); 1/0 stays for s2.
  const std::vector<std::pair<uint64_t, uint64_t>> want = {{0, 1}, {0, 2}, {1, 0}, {1, 2}};
  EXPECT_EQ(ObjectsOn("n1", d.id()), want);
  EXPECT_EQ(ObjectsOn("n2", d.id()), want);
  auto s2 = Open(host, "d@s2", false);
  EXPECT_EQ(ReadAll(*s2, 0, kBlock), v1);
  EXPECT_EQ(ReadAll(*s2, kBlock, kBlock), v0.substr(kBlock));
  EXPECT_EQ(ReadAll(*vol, 0, 2 * kBlock), v2);
  // A view of a deleted snapshot says so.
  auto s1 = host->Open("d@s1", false);
  EXPECT_TRUE(absl::IsNotFound(s1.status())) << s1.status();
}

TEST_F(SnapshotTest, AReplicaThatFailsTheCopyIsMarkedStaleAndTheWriteGoesOn) {
  const std::string v0 = Pattern(kBlock, 20);
  auto [d, host, vol] = WrittenThenSnapshotted(v0);
  nodes_["n2"]->gated_io->refuse = true;
  const std::string v1 = Pattern(kBlock, 21);
  Put(*vol, 0, v1);
  nodes_["n2"]->gated_io->refuse = false;
  EXPECT_EQ(StateOf(d, 0, "n2"), pb::STALE);
  EXPECT_EQ(StateOf(d, 0, "n1"), pb::CLEAN);
  EXPECT_EQ(ReadAll(*vol, 0, kBlock), v1);
  auto snap = Open(host, "d@s1", false);
  EXPECT_EQ(ReadAll(*snap, 0, kBlock), v0);
}

TEST_F(SnapshotTest, AReplicaThatJoinsDuringTheCopyIsAskedToCopyNotMarkedStale) {
  // A relocation can make a new replica CLEAN between a copy-on-write's copy
  // and its pointer switch. The switch must not mark that replica stale
  // (its data is sound): it is tried again with the new replica copying too.
  const std::string v0 = Pattern(kBlock, 30);
  auto [d, host, vol] = WrittenThenSnapshotted(v0);
  const uint64_t disk_id = d.id();  // clang 14 captures no structured binding
  std::atomic<int> copies{0};
  std::atomic<bool> joined{false};
  auto join = [&](uint16_t method) {
    // Once both replicas made their copy, before the writer hears back.
    if (method != wire::kCopyUp || ++copies != 2) return;
    joined = true;
    TestNode& n3 = *nodes_["n3"];  // the relocation's copy, then its switch
    ASSERT_TRUE(n3.store->Write({disk_id, 0, 0}, 0, v0).ok());
    ASSERT_TRUE(n3.store->Sync().ok());
    auto r = admin_->UpdateChunk(disk_id, 0, [](pb::BlockChunk* ch) -> absl::StatusOr<bool> {
      pb::Replica* rep = ch->mutable_blocks(0)->add_replicas();
      rep->set_node("n3");
      rep->set_state(pb::CLEAN);
      return true;
    });
    ASSERT_TRUE(r.ok()) << r.status();
  };
  nodes_["n1"]->gated_io->after = join;
  nodes_["n2"]->gated_io->after = join;
  const std::string v1 = Pattern(kBlock, 31);
  Put(*vol, 0, v1);
  ASSERT_TRUE(joined);
  for (const char* n : {"n1", "n2", "n3"}) EXPECT_EQ(StateOf(d, 0, n), pb::CLEAN) << n;
  // n3 alone serves both the disk and the snapshot.
  nodes_["n1"]->gated_io->refuse = true;
  nodes_["n2"]->gated_io->refuse = true;
  EXPECT_TRUE(ReadAll(*vol, 0, kBlock) == v1);
  auto snap = Open(host, "d@s1", false);
  EXPECT_TRUE(ReadAll(*snap, 0, kBlock) == v0);
}

TEST_F(SnapshotTest, ACloneReadsThroughToItsParentAndTheTwoStayApart) {
  auto d = CreateDisk("gold", 6 * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  auto parent = Open(host, "gold", true);
  const std::string image = Pattern(4 * kBlock, 30);
  Put(*parent, 0, image);
  Snapshot("gold", "base");
  auto c = admin_->CloneDisk("gold", "base", "vm1", {});
  ASSERT_TRUE(c.ok()) << c.status();
  auto clone = Open(host, "vm1", true);
  EXPECT_EQ(ReadAll(*clone, 0, 4 * kBlock), image);
  EXPECT_EQ(ReadAll(*clone, 4 * kBlock, 2 * kBlock), std::string(2 * kBlock, '\0'));
  auto [status, async] = ReadAsyncAll(*clone, kBlock + 10, 4000);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(async, image.substr(kBlock + 10, 4000));
  EXPECT_TRUE(ObjectsOn("n1", c->id()).empty());  // nothing of its own yet

  // The clone's first write to a block copies it up whole, this write in it.
  const std::string mine = Pattern(3000, 31);
  Put(*clone, kBlock + 500, mine);
  std::string want = image;
  want.replace(kBlock + 500, mine.size(), mine);
  EXPECT_EQ(ReadAll(*clone, 0, 4 * kBlock), want);
  EXPECT_EQ(ObjectsOn("n1", c->id()), (std::vector<std::pair<uint64_t, uint64_t>>{{1, 0}}));
  // The parent moves on; neither sees the other.
  const std::string theirs = Pattern(2 * kBlock, 32);
  Put(*parent, 0, theirs);
  EXPECT_EQ(ReadAll(*clone, 0, 4 * kBlock), want);
  EXPECT_EQ(ReadAll(*parent, kBlock + 500, 3000), theirs.substr(kBlock + 500, 3000));
  EXPECT_EQ(ReadAll(*parent, 2 * kBlock, 2 * kBlock), image.substr(2 * kBlock));
  // Another host sees the same.
  auto other = Open(NewHost("h2"), "vm1", false);
  EXPECT_EQ(ReadAll(*other, 0, 4 * kBlock), want);
}

TEST_F(SnapshotTest, ClonesOfClonesReadThroughTheWholeChain) {
  CreateDisk("d0", 4 * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  std::string want(4 * kBlock, '\0');
  std::string parent = "d0";
  for (int depth = 0; depth < 16; ++depth) {
    auto vol = Open(host, parent, true);
    // Each level writes its own quarter-block somewhere along the disk.
    const uint64_t off = static_cast<uint64_t>(depth) * (kBlock / 4);
    const std::string piece = Pattern(kBlock / 4, 40 + depth);
    Put(*vol, off, piece);
    want.replace(off, piece.size(), piece);
    const std::string snap = "s" + std::to_string(depth);
    Snapshot(parent, snap);
    const std::string child = "d" + std::to_string(depth + 1);
    auto c = admin_->CloneDisk(parent, snap, child, {});
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->parent().depth(), static_cast<uint32_t>(depth + 1));
    parent = child;
  }
  auto leaf = Open(host, parent, false);
  EXPECT_EQ(ReadAll(*leaf, 0, 4 * kBlock), want);
}

TEST_F(SnapshotTest, ASnapshotOfACloneSeesThroughToTheParentWhereTheCloneHadNothing) {
  CreateDisk("gold", 2 * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  auto parent = Open(host, "gold", true);
  const std::string image = Pattern(2 * kBlock, 50);
  Put(*parent, 0, image);
  Snapshot("gold", "base");
  ASSERT_TRUE(admin_->CloneDisk("gold", "base", "vm", {}).ok());
  auto clone = Open(host, "vm", true);
  Snapshot("vm", "fresh");  // the clone still has nothing
  const std::string mine = Pattern(2 * kBlock, 51);
  Put(*clone, 0, mine);
  auto snap = Open(host, "vm@fresh", false);
  EXPECT_EQ(ReadAll(*snap, 0, 2 * kBlock), image);
  EXPECT_EQ(ReadAll(*clone, 0, 2 * kBlock), mine);
}

}  // namespace
}  // namespace ukai::client
