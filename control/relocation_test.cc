// Relocation's block state machine (control/relocate_job.h) against real node
// services on in-memory stores, with a writer going through libukai the
// whole time: every block ends on the target nodes byte-exact, old replicas
// drop their data, and a runner that dies at any step leaves a job the next
// runner finishes.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/wire_server.h"
#include "control/repair_plan.h"
#include "testing/relocation_fixture.h"

namespace ukai::control {
namespace {

using client::Cluster;
using client::Volume;
using harness::kBlock;
using harness::kSize;
using harness::RelocationTest;

TEST_F(RelocationTest, MovesEveryBlockWhileAWriterKeepsWriting) {
  MakeDisk();
  StartWriter();
  auto job = StartJob({"b"});
  ASSERT_TRUE(RunJob(job.id()).ok());
  StopWriter();
  EXPECT_GT(writes_, 0);
  auto done = admin_->GetJob(job.id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->job.state(), pb::JobRecord::DONE) << done->job.error();
  EXPECT_EQ(done->job.blocks_done(), kSize / kBlock);
  EXPECT_GT(done->job.bytes_done(), 0u);
  EXPECT_TRUE(done->job.pending().empty());
  ExpectPlacedAndExact({"n3", "n4"});
  EXPECT_EQ(StoredOn("n1"), 0u);
  EXPECT_EQ(StoredOn("n2"), 0u);
  // The job marker is gone and new chunks go to the new site.
  EXPECT_FALSE(admin_->store().Get(admin_->paths().disk_job(disk_.id())).ok());
  EXPECT_EQ(admin_->GetSpec(disk_.id())->spec.placement().sites(0), "b");
}

// A runner dies at each step in turn (in the second batch, so the first is
// done); the next runner finishes the job from what ZooKeeper holds.
TEST_F(RelocationTest, ResumesAfterTheRunnerDiesAtAnyStep) {
  for (const char* point : {"start", "before-syncing", "syncing", "fenced", "copied", "pending",
                            "switched", "fenced-after-switch", "finished"}) {
    SCOPED_TRACE(point);
    TearDown();
    stop_writer_ = false;
    SetUp();
    MakeDisk();
    StartWriter();
    auto job = StartJob({"b"});
    int hits = 0;
    JobOptions crash;
    const bool once = std::string(point) == "start";
    crash.crash_at = [&](const std::string& p) { return p == point && (++hits == 2 || once); };
    absl::Status s = RunJob(job.id(), crash);
    EXPECT_TRUE(absl::IsAborted(s)) << s;
    EXPECT_EQ(admin_->GetJob(job.id())->job.state(), pb::JobRecord::RUNNING);
    ASSERT_TRUE(RunJob(job.id()).ok());
    StopWriter();
    EXPECT_EQ(admin_->GetJob(job.id())->job.state(), pb::JobRecord::DONE);
    ExpectPlacedAndExact({"n3", "n4"});
    EXPECT_EQ(StoredOn("n1"), 0u);
    EXPECT_EQ(StoredOn("n2"), 0u);
  }
}

TEST_F(RelocationTest, CancelLeavesEveryBlockReadableAndRestoresThePolicy) {
  MakeDisk();
  StartWriter();
  auto job = StartJob({"b"});
  JobOptions o;
  int copied = 0;
  // Cancel while the second batch is being copied (32 blocks, two new
  // replicas each: copy 65 is the second batch's first): it is taken back.
  o.crash_at = [&](const std::string& p) {
    if (p == "copied" && ++copied == 65) {
      EXPECT_TRUE(admin_->CancelJob(job.id()).ok());
    }
    return false;
  };
  ASSERT_TRUE(RunJob(job.id(), o).ok());
  StopWriter();
  auto j = admin_->GetJob(job.id());
  EXPECT_EQ(j->job.state(), pb::JobRecord::CANCELLED);
  ExpectPlacedAndExact({"n3", "n4"}, 0, 32);
  ExpectPlacedAndExact({"n1", "n2"}, 32, 64);
  auto spec = admin_->GetSpec(disk_.id());
  EXPECT_EQ(spec->spec.placement().nodes_size(), 2);  // n1,n2 again
  EXPECT_FALSE(admin_->store().Get(admin_->paths().disk_job(disk_.id())).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(admin_->CancelJob(job.id()).status()));
}

// A new replica that misses a write (a client marked it STALE) is never made
// CLEAN: the batch is copied again from scratch.
TEST_F(RelocationTest, ANewReplicaThatWentStaleIsCopiedAgain) {
  MakeDisk();
  auto job = StartJob({"b"});
  JobOptions o;
  int copied = 0;
  o.crash_at = [&](const std::string& p) {
    // After the first batch's last copy (32 blocks, two new replicas each):
    // n3 already holds block 0; it goes stale, and then misses a write.
    if (p == "copied" && ++copied == 64) {
      EXPECT_TRUE(admin_->MarkStale(disk_.id(), 0, "n3").ok());
      std::string data(4096, 'S');
      EXPECT_TRUE(vol_->Write(8192, data.data(), data.size()).ok());
      model_.replace(8192, data.size(), data);
    }
    return false;
  };
  ASSERT_TRUE(RunJob(job.id(), o).ok());
  EXPECT_GE(copied, 64);
  ExpectPlacedAndExact({"n3", "n4"});
}

// Blocks no replica holds data of are not copied, yet writes that reach
// them during the job land on the new replicas like any other.
TEST_F(RelocationTest, AskingForObjectsPastTheDiskIsRefused) {
  MakeDisk(/*sparse=*/true);
  pb::IoHeader hdr;
  hdr.set_disk_id(disk_.id());
  hdr.set_layout_version(admin_->GetSpec(disk_.id())->spec.layout_version());
  EXPECT_TRUE(copy_nodes_->Objects("n1", hdr, 0, 16).ok());
  auto r = copy_nodes_->Objects("n1", hdr, ~0ull - 10, 1024);  // would wrap
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
}

TEST_F(RelocationTest, CopiesOnlyWrittenBlocks) {
  MakeDisk(/*sparse=*/true);
  uint64_t written = 0;
  for (uint64_t b = 0; b < kSize / kBlock; b += 3) ++written;
  auto job = StartJob({"b"});
  JobOptions o;
  int copies = 0;
  o.crash_at = [&](const std::string& p) {
    copies += p == "copied";
    return false;
  };
  ASSERT_TRUE(RunJob(job.id(), o).ok());
  EXPECT_EQ(copies, 2 * written);  // two new replicas of each written block, no more
  auto done = admin_->GetJob(job.id());
  EXPECT_EQ(done->job.state(), pb::JobRecord::DONE) << done->job.error();
  EXPECT_EQ(done->job.bytes_done(), 2 * written * kBlock);
  ExpectPlacedAndExact({"n3", "n4"});
  EXPECT_EQ(StoredOn("n3"), written * kBlock);

  // Back, with a writer on: blocks empty when the job starts get written.
  // Under a bandwidth limit (copies pull in small steps then).
  StartWriter();
  auto back = StartJob({"a"}, 64 << 20);
  ASSERT_TRUE(RunJob(back.id()).ok());
  StopWriter();
  EXPECT_GT(writes_, 0);
  ExpectPlacedAndExact({"n1", "n2"});
}

// A source replica that misses an acknowledged write and is marked STALE
// while its copies are made: those copies are never made CLEAN; the blocks
// are copied again from a replica still clean.
TEST_F(RelocationTest, CopiesFromASourceThatWentStaleAreNotTrusted) {
  MakeDisk();
  // The replica of block 0 listed first (the one copied from) "missed" a
  // write: its bytes differ from what was acknowledged.
  const std::string first = admin_->ReadChunks(disk_.id())->at(0).blocks(0).replicas(0).node();
  ASSERT_TRUE(nodes_[first]->store->Write({disk_.id(), 0, 0}, 0, std::string(4096, 'Z')).ok());
  auto job = StartJob({"b"});
  JobOptions o;
  int copied = 0;
  o.crash_at = [&](const std::string& p) {
    // The first batch is copied; then the client that saw the write fail
    // on that replica marks it.
    if (p == "copied" && ++copied == 64) {
      EXPECT_TRUE(admin_->MarkStale(disk_.id(), 0, first).ok());
    }
    return false;
  };
  ASSERT_TRUE(RunJob(job.id(), o).ok());
  EXPECT_GT(copied, 64);  // block 0 was copied again
  ExpectPlacedAndExact({"n3", "n4"});
}

// A disk written in two places: the unwritten stretches move in batches
// that grow (up to a chunk) instead of 32 blocks at a time, and the written
// blocks still arrive intact.
TEST_F(RelocationTest, UnwrittenStretchesMoveInGrowingBatches) {
  constexpr uint64_t kBlocks = 4 * meta::kChunkBlocks;  // chunks 0 and 2 get written
  pb::CreateDiskRequest r;
  r.set_name("big");
  r.set_size(kBlocks * kBlock);
  r.set_block_size(kBlock);
  r.mutable_placement()->add_nodes("n1");
  r.mutable_placement()->add_nodes("n2");
  ASSERT_TRUE(admin_->CreateDisk(r).ok());
  auto v = cluster_->Open("big", true);
  ASSERT_TRUE(v.ok()) << v.status();
  const std::string a(kBlock, 'a'), b(kBlock, 'b');
  ASSERT_TRUE((*v)->Write(900 * kBlock, a.data(), a.size()).ok());
  ASSERT_TRUE((*v)->Write(2100 * kBlock, b.data(), b.size()).ok());
  pb::Placement to;
  to.add_sites("b");
  auto job = admin_->StartRelocation("big", to, 0);
  ASSERT_TRUE(job.ok()) << job.status();
  JobOptions o;
  int batches = 0;
  o.crash_at = [&](const std::string& p) {
    batches += p == "syncing";
    return false;
  };
  ASSERT_TRUE(RunJob(job->id(), o).ok());
  // 32, 128, 512, 352 in chunk 0; 32, 128 (block 2100: back to 32), 32,
  // 128, 512, 192 in chunk 2. Fixed batches of 32 would be 64.
  EXPECT_EQ(batches, 10);
  auto chunks = admin_->ReadChunks(job->disk_id());
  ASSERT_TRUE(chunks.ok());
  EXPECT_EQ(chunks->size(), 2u);  // only written chunks exist
  for (const auto& [c, chunk] : *chunks) {
    for (const auto& ptr : chunk.blocks()) {
      std::set<std::string> got;
      for (const auto& rep : ptr.replicas()) got.insert(rep.node());
      EXPECT_EQ(got, (std::set<std::string>{"n3", "n4"})) << "chunk " << c;
    }
  }
  std::string out(kBlock, '\0');
  ASSERT_TRUE((*v)->Read(900 * kBlock, kBlock, out.data()).ok());
  EXPECT_TRUE(out == a);
  ASSERT_TRUE((*v)->Read(2100 * kBlock, kBlock, out.data()).ok());
  EXPECT_TRUE(out == b);
  ASSERT_TRUE((*v)->Read(2101 * kBlock, kBlock, out.data()).ok());
  EXPECT_TRUE(out == std::string(kBlock, '\0'));
}

// Answers every pull never (a source that stopped: SIGSTOP, a partition).
class SilentSource : public wire::WireHandler {
 public:
  absl::Status Handle(const wire::WirePeer&, uint16_t, absl::string_view, absl::string_view,
                      std::string*, bool) override {
    ++pulls;
    release.WaitForNotification();
    return absl::UnavailableError("stopped");
  }
  bool Slow(uint16_t) const override { return true; }
  absl::Notification release;
  std::atomic<int> pulls{0};
};

// A source that stops answering fails its copies after the pull timeout (not
// the job's half hour), and the runner copies from the other source.
TEST_F(RelocationTest, ASourceThatStopsAnsweringIsPassedOver) {
  MakeDisk();
  SilentSource silent;
  wire::WireServer server(&silent);
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  // Before the server goes (it waits for its workers), on any way out.
  absl::Cleanup release = [&] {
    if (!silent.release.HasBeenNotified()) silent.release.Notify();
  };
  // n1's block I/O address now leads to the silent server.
  pb::NodeInfo n1 = nodes_["n1"]->info;
  n1.set_io_address("127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(admin_->store().Set(admin_->paths().node("n1"), n1.SerializeAsString(), -1).ok());
  auto job = StartJob({"b"});
  absl::Time start = absl::Now();
  ASSERT_TRUE(RunJob(job.id()).ok());
  EXPECT_GT(silent.pulls, 0);  // n1 was tried first for some blocks
  // Once a copy from n1 failed, n1 went last for the rest of its batch: at
  // most one failed pull per copy thread (4) in each of the two batches,
  // where trying n1 first every time would cost one per block it leads.
  EXPECT_LE(silent.pulls, 8);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  ExpectPlacedAndExact({"n3", "n4"});
}

// Both limits hold: a job's --bandwidth across all its copies, and a node's
// --copy-bandwidth across all copies into it. Each run here copies 4 MiB
// into each of two nodes; unlimited it takes a tenth of a second.
TEST_F(RelocationTest, BandwidthLimitsHold) {
  MakeDisk();
  auto job = StartJob({"b"}, 8 << 20);  // 8 MiB total at 8 MiB/s
  absl::Time start = absl::Now();
  ASSERT_TRUE(RunJob(job.id()).ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(700)) << "the job's limit was not applied";
  ExpectPlacedAndExact({"n3", "n4"});

  TearDown();
  copy_cap_bps_ = 4 << 20;  // 4 MiB into each node at 4 MiB/s, the two in parallel
  SetUp();
  MakeDisk();
  job = StartJob({"b"});
  start = absl::Now();
  ASSERT_TRUE(RunJob(job.id()).ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(700)) << "the nodes' cap was not applied";
  ExpectPlacedAndExact({"n3", "n4"});
}

TEST_F(RelocationTest, RefusesBadRequestsAndChangesNothing) {
  MakeDisk();
  const auto before = admin_->GetSpec(disk_.id())->spec;
  pb::Placement p;
  EXPECT_TRUE(absl::IsInvalidArgument(admin_->StartRelocation("d", p, 0).status()));  // nowhere
  p.add_sites("nowhere");
  EXPECT_TRUE(absl::IsInvalidArgument(admin_->StartRelocation("d", p, 0).status()));
  p.Clear();
  p.add_nodes("n3");  // two replicas, one node
  EXPECT_TRUE(absl::IsInvalidArgument(admin_->StartRelocation("d", p, 0).status()));
  p.add_nodes("n9");
  EXPECT_TRUE(absl::IsInvalidArgument(admin_->StartRelocation("d", p, 0).status()));
  p.Clear();
  p.add_sites("b");
  EXPECT_TRUE(absl::IsNotFound(admin_->StartRelocation("nope", p, 0).status()));
  EXPECT_EQ(admin_->GetSpec(disk_.id())->spec.layout_version(), before.layout_version());
  EXPECT_TRUE(admin_->ListJobs()->empty());
  auto first = admin_->StartRelocation("d", p, 0);
  ASSERT_TRUE(first.ok());
  auto second = admin_->StartRelocation("d", p, 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status()));
  EXPECT_NE(second.status().message().find(first->id()), std::string::npos);
  EXPECT_EQ(admin_->ListJobs()->size(), 1u);
  // A disk being deleted has no name any more: nothing to relocate.
  pb::CreateDiskRequest r;
  r.set_name("going");
  r.set_size(kSize);
  r.set_block_size(kBlock);
  ASSERT_TRUE(admin_->CreateDisk(r).ok());
  auto going = admin_->BeginDelete("going", false);
  ASSERT_TRUE(going.ok()) << going.status();
  auto refused = admin_->StartRelocation("going", p, 0);
  EXPECT_TRUE(absl::IsNotFound(refused.status())) << refused.status();
  EXPECT_EQ(admin_->ListJobs()->size(), 1u);
  EXPECT_FALSE(admin_->store().Get(admin_->paths().disk_job(going->id())).ok());
}

TEST(RelocationTargets, KeepsReplicasInPlaceAndSpreadsTheRest) {
  std::vector<pb::NodeInfo> nodes;
  for (auto [id, site] :
       {std::pair{"n1", "a"}, {"n2", "a"}, {"n3", "b"}, {"n4", "b"}, {"n5", "b"}}) {
    pb::NodeInfo n;
    n.set_id(id);
    n.set_site(site);
    nodes.push_back(n);
  }
  std::set<std::string> live = {"n1", "n2", "n3", "n4", "n5"};
  pb::BlockPtr ptr;
  for (auto [n, st] : {std::pair{"n1", pb::CLEAN}, {"n4", pb::CLEAN}}) {
    auto* r = ptr.add_replicas();
    r->set_node(n);
    r->set_state(st);
  }
  pb::Placement to;
  to.set_replicas(2);
  to.add_sites("b");
  for (uint64_t seed = 0; seed < 6; ++seed) {
    auto t = RelocationTargets(ptr, to, nodes, live, seed);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ((*t)[0], "n4");  // already there: stays
    EXPECT_NE((*t)[1], "n4");
    EXPECT_EQ(nodes[std::stoi((*t)[1].substr(1)) - 1].site(), "b");
  }
  ptr.mutable_replicas(1)->set_state(pb::STALE);  // a stale copy does not count as in place
  live = {"n1", "n2", "n3"};                      // and n4, n5 are down
  EXPECT_TRUE(absl::IsUnavailable(RelocationTargets(ptr, to, nodes, live, 0).status()));
}

}  // namespace
}  // namespace ukai::control
