// The snapshot jobs of the control plane, rollback (control/rollback.h) and
// flatten (control/flatten_job.h), against real node services on in-memory
// stores and libukai hosts writing and reading the disks.
#include <gtest/gtest.h>

#include "common/executor.h"
#include "control/admin_service.h"
#include "control/grpc_node_peers.h"
#include "control/jobs.h"
#include "testing/snapshot_fixture.h"

namespace ukai::control {
namespace {

using client::Cluster;
using client::Volume;
using harness::InProcess;
using harness::kBlock;
using harness::Pattern;
using harness::SnapshotTest;

// What a node's JobRunner does with job `id`, as node `self`.
absl::Status RunAs(const std::string& self, meta::Catalog* catalog, NodePeers* peers,
                   const std::string& id, JobOptions o = {}) {
  Executor executor("test-jobs", 4, 16);
  return RunJob(JobEnv{self, catalog, peers, &executor, SystemClock(), o, {}}, id,
                [] { return false; });
}

TEST_F(SnapshotTest, RollbackMakesTheDiskReadAsTheSnapshotAndKeepsTheOthers) {
  auto d = CreateDisk("d", 8 * kBlock, kBlock);
  GrpcNodePeers copy_nodes(admin_.get(), InProcess(&nodes_));
  AdminService admin(admin_.get(), &copy_nodes);
  Cluster* host = NewHost("h1");
  const std::string v0 = Pattern(3 * kBlock, 60), v1 = Pattern(kBlock, 61),
                    v2 = Pattern(kBlock, 62);
  const std::string late = Pattern(kBlock, 63);
  std::string s2_view;
  {
    auto vol = Open(host, "d", true);
    Put(*vol, 0, v0);
    Snapshot("d", "s1");
    Put(*vol, 0, v1);
    Put(*vol, 5 * kBlock, late);
    Snapshot("d", "s2");
    Put(*vol, kBlock, v2);
    s2_view = ReadAll(**host->Open("d@s2", false), 0, 8 * kBlock);

    pb::SnapshotRequest req;
    req.set_disk("d");
    req.set_snapshot("s1");
    pb::DiskInfo info;
    grpc::Status refused = admin.Rollback(nullptr, &req, &info);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << refused.error_message();
  }  // the writer closes
  pb::SnapshotRequest req;
  req.set_disk("d");
  req.set_snapshot("s1");
  pb::DiskInfo info;
  grpc::Status st = admin.Rollback(nullptr, &req, &info);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(info.spec().rolling_back().empty());
  auto vol = Open(host, "d", true);
  std::string want = v0 + std::string(5 * kBlock, '\0');
  EXPECT_EQ(ReadAll(*vol, 0, 8 * kBlock), want);
  EXPECT_EQ(ReadAll(**host->Open("d@s2", false), 0, 8 * kBlock), s2_view);
  EXPECT_EQ(ReadAll(**host->Open("d@s1", false), 0, 8 * kBlock), want);
  // Written again, the snapshots stay put; again to the end: nothing left to do.
  Put(*vol, 0, late);
  EXPECT_EQ(ReadAll(**host->Open("d@s1", false), 0, kBlock), v0.substr(0, kBlock));
  vol.reset();
  ASSERT_TRUE(admin.Rollback(nullptr, &req, &info).ok());
  EXPECT_EQ(ReadAll(**host->Open("d", false), 0, 3 * kBlock), v0);
}

TEST_F(SnapshotTest, AFlattenedCloneOutlivesItsParent) {
  CreateDisk("gold", 8 * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  const std::string image = Pattern(6 * kBlock, 80);  // blocks 6 and 7 stay zeros
  {
    auto parent = Open(host, "gold", true);
    Put(*parent, 0, image);
  }
  Snapshot("gold", "base");
  auto c = admin_->CloneDisk("gold", "base", "vm", {});
  ASSERT_TRUE(c.ok()) << c.status();
  auto clone = Open(host, "vm", true);
  const std::string mine = Pattern(5000, 81);
  Put(*clone, 2 * kBlock + 100, mine);  // block 2 is the clone's own before the flatten
  std::string want = image + std::string(2 * kBlock, '\0');
  want.replace(2 * kBlock + 100, mine.size(), mine);

  auto job = admin_->StartFlatten("vm", 0);
  ASSERT_TRUE(job.ok()) << job.status();
  // As a runner that died half way through a batch leaves it: progress shown
  // for blocks that were never switched, which the next runner copies again.
  ASSERT_TRUE(admin_
                  ->UpdateJob(job->id(),
                              [](pb::JobRecord* r) {
                                r->set_runner("n1");
                                r->set_bytes_done(3 * kBlock);
                                r->set_batch_bytes(3 * kBlock);
                              })
                  .ok());
  GrpcNodePeers copy_nodes(admin_.get(), InProcess(&nodes_));
  ASSERT_TRUE(RunAs("n3", admin_.get(), &copy_nodes, job->id()).ok());
  auto done = admin_->GetJob(job->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->job.state(), pb::JobRecord::DONE) << done->job.error();
  EXPECT_EQ(done->job.runner(), "n3");
  // Blocks 0, 1, 3, 4 and 5 copied on each of the 2 replicas, counted once.
  EXPECT_EQ(done->job.bytes_done(), 5u * 2 * kBlock);
  EXPECT_LE(done->job.bytes_done(), done->job.bytes_total());
  EXPECT_EQ(done->job.batch_bytes(), 0u);
  EXPECT_FALSE(admin_->GetByName("vm")->has_parent());
  const pb::BlockChunk chunk = ChunkZero(*c);
  for (int b = 0; b < 6; ++b) EXPECT_FALSE(chunk.blocks(b).inherited()) << b;
  EXPECT_TRUE(admin_->GetByName("gold")->snapshots(0).clones().empty());
  EXPECT_EQ(ReadAll(*clone, 0, 8 * kBlock), want);

  // The parent goes entirely; the clone reads the same and writes on.
  ASSERT_TRUE(admin_->DeleteSnapshot("gold", "base").ok());
  auto gone = admin_->BeginDelete("gold", false);
  ASSERT_TRUE(gone.ok()) << gone.status();
  for (auto& [id, n] : nodes_) ASSERT_TRUE(n->store->DropDisk(gone->id()).ok());
  ASSERT_TRUE(admin_->FinishDelete(gone->id()).ok());
  auto fresh = Open(NewHost("h2"), "vm", false);
  EXPECT_EQ(ReadAll(*fresh, 0, 8 * kBlock), want);
  const std::string late = Pattern(kBlock, 82);
  Put(*clone, 7 * kBlock, late);  // a block the parent never had: no parent needed
  EXPECT_EQ(ReadAll(*clone, 7 * kBlock, kBlock), late);
}

TEST_F(SnapshotTest, AFlattenFillsAgainWhenTheClonesWritesMoveTheLayout) {
  CreateDisk("gold", 4 * kBlock, kBlock);
  Cluster* host = NewHost("h1");
  const std::string image = Pattern(4 * kBlock, 83);
  Put(*Open(host, "gold", true), 0, image);
  Snapshot("gold", "base");
  auto c = admin_->CloneDisk("gold", "base", "vm", {});
  ASSERT_TRUE(c.ok()) << c.status();
  auto clone = Open(host, "vm", true);
  Put(*clone, 0, Pattern(100, 84));  // the clone's chunk exists: the flatten fills at once
  std::string want = image;
  want.replace(0, 100, Pattern(100, 84));

  // Just before the first fill the VM writes block 3 for the first time: its
  // copy-up switches a pointer, so the layout the flatten read is old.
  const std::string late = Pattern(4096, 85);
  want.replace(3 * kBlock, late.size(), late);
  int fills = 0;
  JobOptions o;
  o.retry_min = absl::Milliseconds(1);
  o.crash_at = [&](const std::string& p) {
    if (p != "fill" || ++fills != 1) return false;
    Put(*clone, 3 * kBlock, late);
    // The nodes hear of the new layout (as their watches tell them).
    const pb::DiskSpec now = *admin_->GetByName("vm");
    for (auto& [id, n] : nodes_) {
      EXPECT_TRUE(n->registry->Fence(now.id(), now.layout_version(), absl::Seconds(5)).ok());
    }
    return false;
  };
  auto job = admin_->StartFlatten("vm", 0);
  ASSERT_TRUE(job.ok()) << job.status();
  GrpcNodePeers copy_nodes(admin_.get(), InProcess(&nodes_));
  ASSERT_TRUE(RunAs("n3", admin_.get(), &copy_nodes, job->id(), o).ok());
  EXPECT_EQ(fills, 3 * 2 + 1);  // blocks 1-3 on 2 replicas; the first one refused, then again
  auto done = admin_->GetJob(job->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->job.state(), pb::JobRecord::DONE) << done->job.error();
  EXPECT_FALSE(admin_->GetByName("vm")->has_parent());
  // No replica was blamed for the layout moving.
  const pb::BlockChunk chunk = ChunkZero(*c);
  for (int b = 0; b < 4; ++b) {
    EXPECT_FALSE(chunk.blocks(b).inherited()) << b;
    for (const auto& r : chunk.blocks(b).replicas())
      EXPECT_EQ(r.state(), pb::CLEAN) << b << r.node();
  }
  EXPECT_EQ(ReadAll(*clone, 0, 4 * kBlock), want);
  EXPECT_EQ(ReadAll(*Open(NewHost("h2"), "vm", false), 0, 4 * kBlock), want);
}

}  // namespace
}  // namespace ukai::control
