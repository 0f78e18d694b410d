// Repair, re-replication and scrub (control/repair_plan.h PlanRepair,
// control/repair_scanner.h, control/scrub_job.h) on the relocation fixture: stale
// replicas catch up, leaving nodes' replicas are rebuilt where the policy
// allows, rotten pages are found and copied back, with a writer running
// where it matters.
#include <gtest/gtest.h>

#include <algorithm>

#include "absl/strings/str_join.h"
#include "control/repair_plan.h"
#include "control/repair_scanner.h"
#include "node/local_scrubber.h"
#include "testing/relocation_fixture.h"

namespace ukai::control {
namespace {

using client::Cluster;
using client::Volume;
using harness::kBlock;
using harness::kSize;
using harness::RelocationTest;

// A repair (JobRecord REPAIR) with a writer running: n2 missed writes to
// blocks 5 and 40 (marked stale, as a client does when a write to it
// fails); only those two blocks are copied back to n2, the hole a zeroed
// range left on n1 is a hole on n2 too, and every replica ends CLEAN and
// byte-exact.
TEST_F(RelocationTest, RepairCopiesBackOnlyTheStaleBlocks) {
  MakeDisk();
  for (uint64_t b : {5, 40}) ASSERT_TRUE(admin_->MarkStale(disk_.id(), b, "n2").ok());
  // The volume learns of the marks by a watch: until then n2 must turn its
  // writes away (stale layout), or they could land there.
  ASSERT_TRUE(
      nodes_["n2"]
          ->registry
          ->Fence(disk_.id(), admin_->GetSpec(disk_.id())->spec.layout_version(), absl::Seconds(5))
          .ok());
  std::string fresh(kBlock, 'F'), zeros(kBlock, '\0');
  ASSERT_TRUE(vol_->Write(5 * kBlock, fresh.data(), fresh.size()).ok());
  model_.replace(5 * kBlock, kBlock, fresh);
  ASSERT_TRUE(vol_->Write(40 * kBlock, zeros.data(), zeros.size()).ok());
  model_.replace(40 * kBlock, kBlock, zeros);
  ASSERT_NE(nodes_["n2"]->Stored(disk_.id(), 40, 0, kBlock), zeros);  // the old data

  auto job = admin_->StartRepair("d", 0);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->kind(), pb::JobRecord::REPAIR);
  auto again = admin_->StartRepair("d", 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(again.status())) << again.status();
  EXPECT_NE(again.status().message().find("already being repaired by " + job->id()),
            std::string::npos)
      << again.status();

  JobOptions o;
  std::vector<std::string> steps;
  o.crash_at = [&](const std::string& p) {
    steps.push_back(p);
    return false;
  };
  StartWriter();
  ASSERT_TRUE(RunJob(job->id(), o).ok());
  StopWriter();
  EXPECT_EQ(std::count(steps.begin(), steps.end(), "copied"), 2);
  auto done = admin_->GetJob(job->id());
  EXPECT_EQ(done->job.state(), pb::JobRecord::DONE) << done->job.error();
  // Block 5 whole; of block 40 only what the writer put there since.
  EXPECT_GE(done->job.bytes_done(), kBlock);
  EXPECT_LT(done->job.bytes_done(), 2 * kBlock);
  EXPECT_EQ(done->job.bytes_total(), 2 * kBlock);
  ExpectPlacedAndExact({"n1", "n2"});
}

// A repair leaves alone what it cannot fix now: a stale replica whose clean
// copies are all down keeps its old data (better than none) and stays
// STALE, and a replica on a node that is down stays listed as it is.
TEST_F(RelocationTest, RepairWaitsForACleanSourceAndLeavesDownNodesAlone) {
  MakeDisk();
  ASSERT_TRUE(admin_->MarkStale(disk_.id(), 3, "n1").ok());
  ASSERT_TRUE(admin_->MarkStale(disk_.id(), 9, "n2").ok());
  const std::string old9 = nodes_["n2"]->Stored(disk_.id(), 9, 0, kBlock);
  nodes_["n1"]->Kill();
  auto job = admin_->StartRepair("d", 0);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(RunJob(job->id()).ok());
  auto done = admin_->GetJob(job->id());
  EXPECT_EQ(done->job.state(), pb::JobRecord::DONE) << done->job.error();
  EXPECT_EQ(done->job.bytes_done(), 0u);
  auto chunk = admin_->ReadChunks(disk_.id())->at(0);
  auto state = [&](uint64_t b, const std::string& n) {
    for (const auto& r : chunk.blocks(static_cast<int>(b)).replicas()) {
      if (r.node() == n) return r.state();
    }
    ADD_FAILURE() << n << " left block " << b;
    return pb::CLEAN;
  };
  EXPECT_EQ(state(3, "n1"), pb::STALE);
  EXPECT_EQ(state(9, "n2"), pb::STALE);
  EXPECT_EQ(state(9, "n1"), pb::CLEAN);
  EXPECT_EQ(nodes_["n2"]->Stored(disk_.id(), 9, 0, kBlock), old9);
}

// A scan starts a repair when a live node's replica is stale and a clean one
// is up, at the scanning node's repair rate, and never a second one while
// one runs.
TEST_F(RelocationTest, RepairScanStartsOneJobForStaleReplicas) {
  MakeDisk();
  RepairScanner n1("n1", admin_.get(), absl::ZeroDuration(), absl::Hours(1), 0);
  RepairScanner n3("n3", admin_.get(), absl::ZeroDuration(), absl::Hours(1), 64 << 20);
  EXPECT_TRUE(n1.ScanOnce().empty());  // nothing stale
  ASSERT_TRUE(admin_->MarkStale(disk_.id(), 7, "n2").ok());
  EXPECT_EQ(n3.ScanOnce(), std::vector<std::string>{"d"});  // any node's scan
  EXPECT_TRUE(n1.ScanOnce().empty());                       // one is running
  auto jobs = admin_->ListJobs();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ(jobs->at(0).bandwidth_bps(), 64u << 20);
  ASSERT_TRUE(RunJob(jobs->at(0).id()).ok());
  EXPECT_TRUE(n1.ScanOnce().empty());  // repaired
  ExpectPlacedAndExact({"n1", "n2"});
}

// Draining n2 with a writer running: its replicas are rebuilt where the
// policy allows (not in site b while the disk is pinned to n1,n2, then on
// n3/n4 once its policy allows site b), n2 ends with no block and no data,
// and the disk reads back exactly.
TEST_F(RelocationTest, DrainMovesReplicasWhereThePolicyAllows) {
  MakeDisk();
  ASSERT_TRUE(admin_
                  ->UpdateNodeState("n2",
                                    [](pb::NodeState* s) {
                                      s->set_draining(true);
                                      return true;
                                    })
                  .ok());
  RepairScanner scan("n1", admin_.get(), absl::ZeroDuration(), absl::Hours(1), 0);
  EXPECT_TRUE(scan.ScanOnce().empty());  // pinned to n1,n2; site a has no other node
  pb::Placement anywhere;
  anywhere.set_replicas(2);
  anywhere.add_sites("a");
  anywhere.add_sites("b");
  ASSERT_TRUE(admin_->SetPlacement(disk_.id(), anywhere).ok());
  ASSERT_EQ(scan.ScanOnce(), std::vector<std::string>{"d"});
  auto jobs = admin_->ListJobs();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ(std::vector<std::string>(jobs->at(0).replace_nodes().begin(),
                                     jobs->at(0).replace_nodes().end()),
            std::vector<std::string>{"n2"});
  StartWriter();
  ASSERT_TRUE(RunJob(jobs->at(0).id()).ok());
  StopWriter();
  EXPECT_GT(writes_, 0);
  auto chunk = admin_->ReadChunks(disk_.id())->at(0);
  std::set<std::string> used;
  for (uint64_t b = 0; b < kSize / kBlock; ++b) {
    std::set<std::string> got;
    for (const auto& r : chunk.blocks(static_cast<int>(b)).replicas()) {
      EXPECT_EQ(r.state(), pb::CLEAN) << "block " << b << " " << r.node();
      got.insert(r.node());
      ASSERT_EQ(nodes_[r.node()]->Stored(disk_.id(), b, 0, kBlock),
                model_.substr(b * kBlock, kBlock))
          << "block " << b << " on " << r.node();
    }
    EXPECT_EQ(got.size(), 2u) << "block " << b;
    EXPECT_TRUE(got.count("n1") && !got.count("n2")) << "block " << b;
    used.insert(got.begin(), got.end());
  }
  EXPECT_EQ(used, (std::set<std::string>{"n1", "n3", "n4"}));  // spread over site b
  EXPECT_EQ(StoredOn("n2"), 0u);
  std::string all(kSize, '\0');
  ASSERT_TRUE(vol_->Read(0, kSize, all.data()).ok());
  EXPECT_TRUE(all == model_);
  EXPECT_TRUE(scan.ScanOnce().empty());  // nothing left to move
}

// A node down past the grace time: the first scan notes since when, a later
// one (grace passed) rebuilds its replicas on the other site (the disk's
// policy names none), and the disk reads back exactly without it.
TEST_F(RelocationTest, ANodeDownPastTheGraceTimeIsRebuiltElsewhere) {
  MakeDisk();
  pb::Placement anywhere;
  anywhere.set_replicas(2);
  ASSERT_TRUE(admin_->SetPlacement(disk_.id(), anywhere).ok());
  nodes_["n2"]->Kill();
  RepairScanner scan("n1", admin_.get(), absl::ZeroDuration(), absl::Milliseconds(200), 0);
  EXPECT_TRUE(scan.ScanOnce().empty());  // down, not yet for long
  auto states = admin_->NodeStates();
  ASSERT_TRUE(states.ok());
  EXPECT_NE(states->at("n2").down_since_ms(), 0u);
  EXPECT_EQ(states->at("n1").down_since_ms(), 0u);
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_EQ(scan.ScanOnce(), std::vector<std::string>{"d"});
  auto jobs = admin_->ListJobs();
  ASSERT_EQ(jobs->size(), 1u);
  ASSERT_TRUE(RunJob(jobs->at(0).id()).ok());
  auto chunk = admin_->ReadChunks(disk_.id())->at(0);
  for (uint64_t b = 0; b < kSize / kBlock; ++b) {
    std::set<std::string> got;
    for (const auto& r : chunk.blocks(static_cast<int>(b)).replicas()) {
      EXPECT_EQ(r.state(), pb::CLEAN);
      got.insert(r.node());
    }
    EXPECT_TRUE(got.size() == 2 && got.count("n1") && !got.count("n2")) << "block " << b;
  }
  std::string all(kSize, '\0');
  ASSERT_TRUE(vol_->Read(0, kSize, all.data()).ok());
  EXPECT_TRUE(all == model_);
}

// Pages rot (data no longer matching its checksum) on n2 in block 3 and on
// n1 in block 9: a scrub finds both, marks each rotten replica stale and
// starts the repair that makes both replicas exact again; a second scrub
// finds nothing.
TEST_F(RelocationTest, ScrubFindsRottenPagesAndRepairsThem) {
  MakeDisk();
  ASSERT_TRUE(nodes_["n2"]->pages->Corrupt({disk_.id(), 3, 0, 2}, 100));
  ASSERT_TRUE(nodes_["n1"]->pages->Corrupt({disk_.id(), 9, 0, 5}, 7));
  auto job = admin_->StartScrub("d", 0);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(RunJob(job->id()).ok());
  auto done = admin_->GetJob(job->id());
  ASSERT_EQ(done->job.state(), pb::JobRecord::DONE) << done->job.error();
  EXPECT_EQ(done->job.bad_pages(), 2u);
  EXPECT_EQ(done->job.mismatched_pages(), 0u);
  EXPECT_EQ(done->job.pages_checked(), 2 * StoredOn("n1") / 4096);
  ASSERT_EQ(done->job.findings_size(), 2) << absl::StrJoin(done->job.findings(), "\n");
  EXPECT_NE(done->job.findings(0).find("block 3 on n2: 1 page(s) fail"), std::string::npos)
      << done->job.findings(0);
  EXPECT_NE(done->job.findings(1).find("block 9 on n1: 1 page(s) fail"), std::string::npos)
      << done->job.findings(1);
  EXPECT_EQ(ReplicaState(3, "n2"), pb::STALE);
  EXPECT_EQ(ReplicaState(9, "n1"), pb::STALE);
  EXPECT_EQ(ReplicaState(3, "n1"), pb::CLEAN);
  std::string repair;
  auto jobs = admin_->ListJobs();
  ASSERT_TRUE(jobs.ok());
  for (const auto& j : *jobs) {
    if (j.kind() == pb::JobRecord::REPAIR && j.state() == pb::JobRecord::RUNNING) repair = j.id();
  }
  ASSERT_FALSE(repair.empty()) << "the scrub started no repair";
  ASSERT_TRUE(RunJob(repair).ok());
  ExpectPlacedAndExact({"n1", "n2"});
  auto again = admin_->StartScrub("d", 0);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(RunJob(again->id()).ok());
  done = admin_->GetJob(again->id());
  EXPECT_EQ(done->job.bad_pages(), 0u);
  EXPECT_EQ(done->job.findings_size(), 0);
}

// A read that meets a rotten page on the replica it tries first returns the
// other replica's data and marks the rotten one stale for the block.
TEST_F(RelocationTest, AReadMarksARottenReplicaStale) {
  MakeDisk();
  // Which replica a read tries first depends on measured RTTs: rot the page
  // on one, then (restored) on the other, until a read met it first.
  bool marked = false;
  for (int i = 0; i < 6 && !marked; ++i) {
    const std::string n = i % 2 ? "n2" : "n1";
    ASSERT_TRUE(nodes_[n]->pages->Corrupt({disk_.id(), 20, 0, 0}, 9));
    std::string got(kBlock, '\0');
    ASSERT_TRUE(vol_->Read(20 * kBlock, kBlock, got.data()).ok());
    EXPECT_TRUE(got == model_.substr(20 * kBlock, kBlock));
    marked = ReplicaState(20, n) == pb::STALE;
    if (!marked) {
      ASSERT_TRUE(nodes_[n]->pages->Corrupt({disk_.id(), 20, 0, 0}, 9));  // restored
    }
  }
  EXPECT_TRUE(marked) << "no read marked the rotten replica";
}

TEST(PlanRepair, RebuildsLeavingReplicasInTheirSiteFirst) {
  std::vector<pb::NodeInfo> nodes;
  for (auto [id, site] : {std::pair{"n1", "a"}, {"n2", "a"}, {"n3", "a"}, {"n4", "b"}}) {
    pb::NodeInfo n;
    n.set_id(id);
    n.set_site(site);
    nodes.push_back(n);
  }
  auto block = [](std::vector<std::pair<std::string, pb::ReplicaState>> rs) {
    pb::BlockPtr p;
    for (auto& [n, st] : rs) {
      auto* r = p.add_replicas();
      r->set_node(n);
      r->set_state(st);
    }
    return p;
  };
  RepairScope scope;
  scope.nodes = nodes;
  scope.live = {"n1", "n3", "n4"};  // n2 down
  scope.placement.set_replicas(2);
  // n2 briefly down: left as it is; nothing to do.
  auto p = PlanRepair(block({{"n1", pb::CLEAN}, {"n2", pb::STALE}}), scope, 0);
  EXPECT_FALSE(p.work);
  EXPECT_EQ(p.targets, std::vector<std::string>{"n1"});
  ASSERT_EQ(p.kept.size(), 1u);
  // n2 gone for good: rebuilt on n3, its site, never on n4 while n3 can.
  scope.replace = {"n2"};
  for (uint64_t seed = 0; seed < 4; ++seed) {
    p = PlanRepair(block({{"n1", pb::CLEAN}, {"n2", pb::CLEAN}}), scope, seed);
    EXPECT_TRUE(p.work);
    EXPECT_EQ(p.targets, (std::vector<std::string>{"n1", "n3"})) << seed;
    EXPECT_TRUE(p.kept.empty());
  }
  // Site a full: site b only if the policy names it (or names nothing).
  scope.live = {"n1", "n4"};
  scope.placement.add_nodes("n1");
  scope.placement.add_nodes("n2");
  p = PlanRepair(block({{"n1", pb::CLEAN}, {"n2", pb::CLEAN}}), scope, 0);
  EXPECT_FALSE(p.work);
  EXPECT_EQ(p.kept.size(), 1u);
  scope.placement.clear_nodes();
  p = PlanRepair(block({{"n1", pb::CLEAN}, {"n2", pb::CLEAN}}), scope, 0);
  EXPECT_EQ(p.targets, (std::vector<std::string>{"n1", "n4"}));
  // No clean replica up: nothing moves, the stale copy stays.
  p = PlanRepair(block({{"n1", pb::STALE}, {"n2", pb::CLEAN}}), scope, 0);
  EXPECT_FALSE(p.work);
  EXPECT_TRUE(p.targets.empty());
  EXPECT_EQ(p.kept.size(), 2u);
}

// Each node's own slow scrub (LocalScrubber): a page rotten in n1's copy of
// block 3 makes that replica stale (a repair copies it back); a rotten page
// in block 5, where n1 holds the last clean replica, is kept and counted;
// n2's scrub finds nothing.
TEST_F(RelocationTest, LocalScrubMarksARottenReplicaStaleButNeverTheLastClean) {
  MakeDisk();
  ASSERT_TRUE(admin_->MarkStale(disk_.id(), 5, "n2").ok());
  ASSERT_TRUE(nodes_["n1"]->pages->Corrupt(node::PageKey{disk_.id(), 3, 0, 2}, 7));
  ASSERT_TRUE(nodes_["n1"]->pages->Corrupt(node::PageKey{disk_.id(), 5, 0, 0}, 7));
  node::LocalScrubber n1("n1", nodes_["n1"]->catalog.get(), nodes_["n1"]->store.get(),
                         absl::ZeroDuration(), 0);
  const auto pass = n1.ScanOnce();
  EXPECT_GT(pass.pages_checked, 0u);
  EXPECT_LE(pass.pages_checked, kSize / 4096);
  EXPECT_EQ(pass.bad_pages, 2u);
  EXPECT_EQ(pass.replicas_marked_stale, 1u);
  auto chunk = admin_->ReadChunks(disk_.id())->at(0);
  auto state = [&](uint64_t b, const std::string& n) {
    for (const auto& r : chunk.blocks(static_cast<int>(b)).replicas()) {
      if (r.node() == n) return r.state();
    }
    return pb::ReplicaState_MIN;
  };
  EXPECT_EQ(state(3, "n1"), pb::STALE);
  EXPECT_EQ(state(3, "n2"), pb::CLEAN);
  EXPECT_EQ(state(5, "n1"), pb::CLEAN);  // the last clean one: kept
  EXPECT_EQ(state(4, "n1"), pb::CLEAN);
  node::LocalScrubber n2("n2", nodes_["n2"]->catalog.get(), nodes_["n2"]->store.get(),
                         absl::ZeroDuration(), 0);
  const auto clean = n2.ScanOnce();
  EXPECT_GT(clean.pages_checked, 0u);
  EXPECT_EQ(clean.bad_pages, 0u);
  EXPECT_EQ(clean.replicas_marked_stale, 0u);
}

}  // namespace
}  // namespace ukai::control
