// Relocation's block state machine (node/relocator.h) against real node
// services on in-memory stores, with a writer going through libukai the
// whole time: every block ends on the target nodes byte-exact, old replicas
// drop their data, and a runner that dies at any step leaves a job the next
// runner finishes.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/cluster_internal.h"
#include "client/test_nodes_testing.h"
#include "common/wire_server.h"
#include "meta/catalog.h"
#include "node/job_runner.h"
#include "node/relocator.h"
#include "node/repair_scanner.h"

namespace ukai::client {
namespace {

constexpr uint32_t kBlock = 64 << 10;
constexpr uint64_t kSize = 4 << 20;  // 64 blocks: two batches of 32

class RelocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = meta::NewMemMetaTree();
    admin_meta_ = meta::NewMemMetaStore(tree_);
    admin_ = std::make_unique<meta::Catalog>(admin_meta_.get(), "/ukai");
    ASSERT_TRUE(admin_->Init().ok());
    for (auto [id, site] : {std::pair{"n1", "a"}, {"n2", "a"}, {"n3", "b"}, {"n4", "b"}}) {
      nodes_[id] = std::make_unique<TestNode>(tree_, id, site, copy_cap_bps_);
    }
    copy_nodes_ = std::make_unique<node::GrpcCopyNodes>(admin_.get(), InProcess(&nodes_));
    ClusterOptions o;
    o.host = "h1";
    o.site = "a";
    o.rpc_timeout_ms = 5000;
    auto c = ConnectCluster(o, meta::NewMemMetaStore(tree_), InProcess(&nodes_));
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
  }
  void TearDown() override {
    StopWriter();
    vol_.reset();
    cluster_.reset();
    copy_nodes_.reset();
    nodes_.clear();
  }

  // A disk on n1,n2 full of random data (`sparse`: every third block only,
  // the rest never written); model_ holds what it should read.
  void MakeDisk(bool sparse = false) {
    pb::CreateDiskRequest r;
    r.set_name("d");
    r.set_size(kSize);
    r.set_block_size(kBlock);
    r.mutable_placement()->add_nodes("n1");
    r.mutable_placement()->add_nodes("n2");
    auto d = admin_->CreateDisk(r);
    ASSERT_TRUE(d.ok()) << d.status();
    disk_ = *d;
    auto v = cluster_->Open("d", true);
    ASSERT_TRUE(v.ok()) << v.status();
    vol_ = *v;
    model_.assign(kSize, '\0');
    std::mt19937 rng(1);
    for (auto& c : model_) c = static_cast<char>(rng() % 7 == 0 ? 0 : rng());
    if (!sparse) {
      ASSERT_TRUE(vol_->Write(0, model_.data(), model_.size()).ok());
      return;
    }
    for (uint64_t b = 0; b < kSize / kBlock; ++b) {
      if (b % 3 != 0) {
        std::fill_n(&model_[b * kBlock], kBlock, '\0');
        continue;
      }
      ASSERT_TRUE(vol_->Write(b * kBlock, &model_[b * kBlock], kBlock).ok());
    }
  }

  // Random writes, aligned and not (a sub-sector write to a block being
  // copied takes the widened path), each recorded once acknowledged.
  void StartWriter() {
    writer_ = std::thread([this] {
      std::mt19937 rng(99);
      while (!stop_writer_) {
        uint64_t off = rng() % kSize;
        size_t len = 1 + rng() % 9000;
        if (rng() % 2) off = off / 4096 * 4096, len = 4096 * (1 + rng() % 3);
        len = std::min<uint64_t>(len, kSize - off);
        std::string data(len, static_cast<char>('A' + rng() % 26));
        absl::MutexLock l(&model_mu_);  // one write at a time: the model stays exact
        absl::Status s = vol_->Write(off, data.data(), data.size());
        if (!s.ok()) {
          ADD_FAILURE() << "write at " << off << ": " << s;
          return;
        }
        model_.replace(off, len, data);
        ++writes_;
      }
    });
  }
  void StopWriter() {
    stop_writer_ = true;
    if (writer_.joinable()) writer_.join();
  }

  pb::JobRecord StartJob(std::vector<std::string> sites, uint64_t bandwidth_bps = 0) {
    pb::Placement to;
    for (auto& s : sites) to.add_sites(s);
    auto j = admin_->StartRelocation("d", to, bandwidth_bps);
    EXPECT_TRUE(j.ok()) << j.status();
    return *j;
  }
  absl::Status RunJob(const std::string& id, node::RelocatorOptions o = {}) {
    o.retry_min = absl::Milliseconds(10);
    o.retry_max = absl::Milliseconds(50);
    node::Relocator r("runner", admin_.get(), copy_nodes_.get(), o);
    return r.Run(id, [] { return false; });
  }

  // Every block's replicas, and every replica's bytes against the model.
  void ExpectPlacedAndExact(const std::set<std::string>& want_nodes, uint64_t from_block = 0,
                            uint64_t to_block = kSize / kBlock) {
    auto chunks = admin_->ReadChunks(disk_.id());
    ASSERT_TRUE(chunks.ok());
    const auto& chunk = chunks->at(0);
    for (uint64_t b = from_block; b < to_block; ++b) {
      std::set<std::string> got;
      for (const auto& r : chunk.blocks(static_cast<int>(b)).replicas()) {
        EXPECT_EQ(r.state(), pb::CLEAN) << "block " << b << " " << r.node();
        got.insert(r.node());
      }
      EXPECT_EQ(got, want_nodes) << "block " << b;
      for (const auto& n : got) {
        ASSERT_EQ(nodes_[n]->Stored(disk_.id(), b, 0, kBlock), model_.substr(b * kBlock, kBlock))
            << "block " << b << " on " << n;
      }
    }
    std::string all(kSize, '\0');
    ASSERT_TRUE(vol_->Read(0, kSize, all.data()).ok());
    EXPECT_TRUE(all == model_) << "the disk reads differently from what was written";
  }
  pb::ReplicaState ReplicaState(uint64_t b, const std::string& n) {
    auto chunk = admin_->ReadChunks(disk_.id())->at(0);
    for (const auto& r : chunk.blocks(static_cast<int>(b)).replicas()) {
      if (r.node() == n) return r.state();
    }
    ADD_FAILURE() << n << " holds no replica of block " << b;
    return pb::SYNCING;
  }
  uint64_t StoredOn(const std::string& n) {
    auto b = nodes_[n]->store->DiskBytes();
    return b->count(disk_.id()) ? b->at(disk_.id()) : 0;
  }

  uint64_t copy_cap_bps_ = 0;  // every node's --copy-bandwidth (read by SetUp)
  std::shared_ptr<meta::MemMetaTree> tree_;
  std::unique_ptr<meta::MetaStore> admin_meta_;
  std::unique_ptr<meta::Catalog> admin_;
  std::map<std::string, std::unique_ptr<TestNode>> nodes_;
  std::unique_ptr<node::GrpcCopyNodes> copy_nodes_;
  std::unique_ptr<Cluster> cluster_;
  std::shared_ptr<Volume> vol_;
  pb::DiskSpec disk_;
  absl::Mutex model_mu_;
  std::string model_;
  std::thread writer_;
  std::atomic<bool> stop_writer_{false};
  std::atomic<int> writes_{0};
};

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
    node::RelocatorOptions crash;
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
  node::RelocatorOptions o;
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
  node::RelocatorOptions o;
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
TEST_F(RelocationTest, CopiesOnlyWrittenBlocks) {
  MakeDisk(/*sparse=*/true);
  uint64_t written = 0;
  for (uint64_t b = 0; b < kSize / kBlock; b += 3) ++written;
  auto job = StartJob({"b"});
  node::RelocatorOptions o;
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
  node::RelocatorOptions o;
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
  node::RelocatorOptions o;
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
  absl::Status Handle(uint16_t, absl::string_view, absl::string_view, std::string*,
                      bool) override {
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

// A repair (JobRecord REPAIR) with a writer running: n2 missed writes to
// blocks 5 and 40 (marked stale, as a client does when a write to it
// fails); only those two blocks are copied back to n2, the hole a zeroed
// range left on n1 is a hole on n2 too, and every replica ends CLEAN and
// byte-exact.
TEST_F(RelocationTest, RepairCopiesBackOnlyTheStaleBlocks) {
  MakeDisk();
  for (uint64_t b : {5, 40}) ASSERT_TRUE(admin_->MarkStale(disk_.id(), b, "n2").ok());
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
            std::string::npos) << again.status();

  node::RelocatorOptions o;
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
// is up, and never a second one while one runs.
TEST_F(RelocationTest, RepairScanStartsOneJobForStaleReplicas) {
  MakeDisk();
  node::RepairScanner n1("n1", admin_.get(), absl::ZeroDuration(), absl::Hours(1));
  node::RepairScanner n3("n3", admin_.get(), absl::ZeroDuration(), absl::Hours(1));
  EXPECT_TRUE(n1.ScanOnce().empty());  // nothing stale
  ASSERT_TRUE(admin_->MarkStale(disk_.id(), 7, "n2").ok());
  EXPECT_EQ(n3.ScanOnce(), std::vector<std::string>{"d"});  // any node's scan
  EXPECT_TRUE(n1.ScanOnce().empty());  // one is running
  auto jobs = admin_->ListJobs();
  ASSERT_EQ(jobs->size(), 1u);
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
  ASSERT_TRUE(admin_->UpdateNodeState("n2", [](pb::NodeState* s) {
    s->set_draining(true);
    return true;
  }).ok());
  node::RepairScanner scan("n1", admin_.get(), absl::ZeroDuration(), absl::Hours(1));
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
      ASSERT_EQ(nodes_[r.node()]->Stored(disk_.id(), b, 0, kBlock), model_.substr(b * kBlock, kBlock))
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
  node::RepairScanner scan("n1", admin_.get(), absl::ZeroDuration(), absl::Milliseconds(200));
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
  node::RepairScope scope;
  scope.nodes = nodes;
  scope.live = {"n1", "n3", "n4"};  // n2 down
  scope.placement.set_replicas(2);
  // n2 briefly down: left as it is; nothing to do.
  auto p = node::PlanRepair(block({{"n1", pb::CLEAN}, {"n2", pb::STALE}}), scope, 0);
  EXPECT_FALSE(p.work);
  EXPECT_EQ(p.targets, std::vector<std::string>{"n1"});
  ASSERT_EQ(p.kept.size(), 1u);
  // n2 gone for good: rebuilt on n3, its site, never on n4 while n3 can.
  scope.replace = {"n2"};
  for (uint64_t seed = 0; seed < 4; ++seed) {
    p = node::PlanRepair(block({{"n1", pb::CLEAN}, {"n2", pb::CLEAN}}), scope, seed);
    EXPECT_TRUE(p.work);
    EXPECT_EQ(p.targets, (std::vector<std::string>{"n1", "n3"})) << seed;
    EXPECT_TRUE(p.kept.empty());
  }
  // Site a full: site b only if the policy names it (or names nothing).
  scope.live = {"n1", "n4"};
  scope.placement.add_nodes("n1");
  scope.placement.add_nodes("n2");
  p = node::PlanRepair(block({{"n1", pb::CLEAN}, {"n2", pb::CLEAN}}), scope, 0);
  EXPECT_FALSE(p.work);
  EXPECT_EQ(p.kept.size(), 1u);
  scope.placement.clear_nodes();
  p = node::PlanRepair(block({{"n1", pb::CLEAN}, {"n2", pb::CLEAN}}), scope, 0);
  EXPECT_EQ(p.targets, (std::vector<std::string>{"n1", "n4"}));
  // No clean replica up: nothing moves, the stale copy stays.
  p = node::PlanRepair(block({{"n1", pb::STALE}, {"n2", pb::CLEAN}}), scope, 0);
  EXPECT_FALSE(p.work);
  EXPECT_TRUE(p.targets.empty());
  EXPECT_EQ(p.kept.size(), 2u);
}

TEST(RelocationTargets, KeepsReplicasInPlaceAndSpreadsTheRest) {
  std::vector<pb::NodeInfo> nodes;
  for (auto [id, site] : {std::pair{"n1", "a"}, {"n2", "a"}, {"n3", "b"}, {"n4", "b"}, {"n5", "b"}}) {
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
    auto t = node::RelocationTargets(ptr, to, nodes, live, seed);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ((*t)[0], "n4");  // already there: stays
    EXPECT_NE((*t)[1], "n4");
    EXPECT_EQ(nodes[std::stoi((*t)[1].substr(1)) - 1].site(), "b");
  }
  ptr.mutable_replicas(1)->set_state(pb::STALE);  // a stale copy does not count as in place
  live = {"n1", "n2", "n3"};                     // and n4, n5 are down
  EXPECT_TRUE(absl::IsUnavailable(node::RelocationTargets(ptr, to, nodes, live, 0).status()));
}

}  // namespace
}  // namespace ukai::client
