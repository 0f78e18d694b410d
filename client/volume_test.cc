// libukai's data path against real node services on in-memory stores:
// MemMetaStore for ZooKeeper, MemPageStore for RocksDB, the block I/O
// transport on loopback and in-process gRPC channels for the rest. No mount;
// no sleeps but those that wait for a failure policy's hold.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "client/cluster_internal.h"
#include "meta/catalog.h"
#include "testing/volume_fixture.h"

namespace ukai::client {
namespace {

using harness::Policy;
using harness::VolumeTest;

TEST_F(VolumeTest, UnalignedCrossBlockWritesReadBackAndReachEveryReplica) {
  auto d = CreateDisk("d", 1 << 20, 64 << 10);
  auto vol = *NewHost("h1")->Open("d", true);
  std::string data(100000, '\0');
  std::mt19937 rng(7);
  for (auto& c : data) c = static_cast<char>(rng());
  ASSERT_TRUE(vol->Write(60000, data.data(), data.size()).ok());  // blocks 0, 1 and 2
  EXPECT_EQ(ReadAll(*vol, 60000, data.size()), data);
  EXPECT_EQ(ReadAll(*vol, 0, 60000), std::string(60000, '\0'));
  for (const char* n : {"n1", "n2"}) {
    EXPECT_EQ(nodes_[n]->Stored(d.id(), 1, 0, 65536), data.substr(65536 - 60000, 65536)) << n;
  }
  EXPECT_EQ(nodes_["n3"]->store->DiskBytes()->count(d.id()), 0u);
}

TEST_F(VolumeTest, ReadAsyncAnswersFromTheNearestReplicaOrFallsBack) {
  // A short hold: closing the volume flushes, with no node answering.
  auto d =
      CreateDisk("d", 1 << 20, 64 << 10, {"n1", "n2"}, Policy(pb::FailurePolicy::DEGRADE, 300));
  auto vol = *NewHost("h1")->Open("d", true);
  std::string data(70000, '\0');
  std::mt19937 rng(11);
  for (auto& c : data) c = static_cast<char>(rng());
  ASSERT_TRUE(vol->Write(1000, data.data(), data.size()).ok());
  EXPECT_EQ(ReadAsyncAll(*vol, 1000, 4096).second, data.substr(0, 4096));          // one block
  EXPECT_EQ(ReadAsyncAll(*vol, 1000, data.size()).second, data);                   // two blocks
  EXPECT_EQ(ReadAsyncAll(*vol, 512 << 10, 4096).second, std::string(4096, '\0'));  // unwritten
  EXPECT_TRUE(absl::IsOutOfRange(ReadAsyncAll(*vol, (1 << 20) - 10, 20).first));
  // The nearest replica's block I/O goes away while ZooKeeper still lists it:
  // the fast path's call fails and the fallback reads the other replica.
  nodes_["n1"]->io_server->Shutdown();
  auto [s, got] = ReadAsyncAll(*vol, 1000, 4096);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(got, data.substr(0, 4096));
  // With neither reachable the read fails; it neither hangs nor invents data.
  nodes_["n2"]->io_server->Shutdown();
  EXPECT_TRUE(absl::IsUnavailable(ReadAsyncAll(*vol, 1000, 4096).first));
}

TEST_F(VolumeTest, WriteAsyncIsDoneWithTheBufferAtOnceAndMarksDeadReplicasBeforeTheAck) {
  auto d =
      CreateDisk("d", 1 << 20, 64 << 10, {"n1", "n2"}, Policy(pb::FailurePolicy::DEGRADE, 300));
  auto vol = *NewHost("h1")->Open("d", true);
  auto write = [&](uint64_t off, std::string data) {
    absl::Notification done;
    absl::Status status;
    vol->WriteAsync(off, data.data(), data.size(), [&](absl::Status s) {
      status = s;
      done.Notify();
    });
    std::fill(data.begin(), data.end(), 'X');  // the caller may reuse its buffer now
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return status;
  };
  ASSERT_TRUE(write(4096, std::string(4096, 'a')).ok());
  for (const char* n : {"n1", "n2"})
    EXPECT_EQ(nodes_[n]->Stored(d.id(), 0, 4096, 4096), std::string(4096, 'a')) << n;
  std::string big(200 << 10, 'b');  // over the copy limit: runs inline
  ASSERT_TRUE(write(0, big).ok());
  EXPECT_EQ(ReadAll(*vol, 0, big.size()), big);
  ASSERT_TRUE(vol->Flush().ok());

  nodes_["n2"]->Kill();
  ASSERT_TRUE(write(65536, std::string(4096, 'c')).ok());
  auto chunk = *admin_->ReadChunk(d.id(), 0);
  EXPECT_EQ(chunk->chunk.blocks(1).replicas(1).state(), pb::STALE);  // before the ack
  EXPECT_EQ(ReadAll(*vol, 65536, 4096), std::string(4096, 'c'));
  nodes_["n1"]->Kill();
  EXPECT_TRUE(absl::IsUnavailable(write(65536, std::string(4096, 'd'))));

  auto ro = *NewHost("h2")->Open("d", false);
  absl::Notification done;
  ro->WriteAsync(0, "x", 1, [&](absl::Status s) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    done.Notify();
  });
  EXPECT_TRUE(done.HasBeenNotified());
}

TEST_F(VolumeTest, ReadsOfUnwrittenRangesAllocateNothing) {
  auto d = CreateDisk("d", 1ull << 40, 4 << 20);
  auto vol = *NewHost("h1")->Open("d", false);
  EXPECT_EQ(ReadAll(*vol, 123ull << 30, 8192), std::string(8192, '\0'));
  EXPECT_TRUE(admin_->ReadChunks(d.id())->empty());
}

TEST_F(VolumeTest, OutOfRangeAndReadOnlyWritesFail) {
  CreateDisk("d", 1 << 20, 64 << 10);
  auto ro = *NewHost("h1")->Open("d", false);
  char buf[16] = {};
  EXPECT_TRUE(absl::IsOutOfRange(ro->Read((1 << 20) - 8, 16, buf)));
  EXPECT_TRUE(absl::IsFailedPrecondition(ro->Write(0, buf, 16)));
}

TEST_F(VolumeTest, DeadReplicaIsMarkedStaleBeforeTheWriteIsAcknowledged) {
  auto d = CreateDisk("d", 1 << 20, 64 << 10);
  auto vol = *NewHost("h1")->Open("d", true);
  ASSERT_TRUE(vol->Write(0, std::string(4096, 'a').data(), 4096).ok());
  ASSERT_TRUE(vol->Flush().ok());
  nodes_["n2"]->Kill();
  std::string b(4096, 'b');
  ASSERT_TRUE(vol->Write(65536, b.data(), b.size()).ok());  // block 1
  auto chunk = *admin_->ReadChunk(d.id(), 0);
  ASSERT_TRUE(chunk.has_value());
  EXPECT_EQ(chunk->chunk.blocks(1).replicas(1).node(), "n2");
  EXPECT_EQ(chunk->chunk.blocks(1).replicas(1).state(), pb::STALE);
  EXPECT_EQ(chunk->chunk.blocks(0).replicas(1).state(), pb::CLEAN);  // not written meanwhile
  EXPECT_GT(admin_->GetSpec(d.id())->spec.layout_version(), d.layout_version());
  EXPECT_EQ(ReadAll(*vol, 65536, 4096), b);
  EXPECT_TRUE(vol->Flush().ok());  // n2 has nothing dirty left: the flush is clean
}

TEST_F(VolumeTest, AWriteFailsWhenEveryReplicaIsDownAndMarksNothing) {
  auto d =
      CreateDisk("d", 1 << 20, 64 << 10, {"n1", "n2"}, Policy(pb::FailurePolicy::DEGRADE, 300));
  auto vol = *NewHost("h1")->Open("d", true);
  ASSERT_TRUE(vol->Write(0, "x", 1).ok());
  nodes_["n1"]->Kill();
  nodes_["n2"]->Kill();
  const absl::Time start = absl::Now();
  EXPECT_TRUE(absl::IsUnavailable(vol->Write(0, "y", 1)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));  // held for the hold time first
  auto chunk = *admin_->ReadChunk(d.id(), 0);
  for (const auto& r : chunk->chunk.blocks(0).replicas()) EXPECT_EQ(r.state(), pb::CLEAN);
}

// Failure policy "degrade, at least 2 of 3": one replica down, writes go on
// and it is marked stale; two down, a write is held for the hold time, then
// fails (EIO) and the replica that missed it is marked stale too, so the
// one that took it is the only one read.
TEST_F(VolumeTest, DegradeGoesOnDownToMinReplicasThenHoldsAndFails) {
  auto d = CreateDisk("d", 1 << 20, 64 << 10, {"n1", "n2", "n3"},
                      Policy(pb::FailurePolicy::DEGRADE, 300, 2));
  auto vol = *NewHost("h1")->Open("d", true);
  ASSERT_TRUE(vol->Write(0, std::string(4096, 'a').data(), 4096).ok());
  nodes_["n3"]->gated_io->refuse = true;
  ASSERT_TRUE(vol->Write(0, std::string(4096, 'b').data(), 4096).ok());
  auto state = [&](const std::string& node) { return StateOf(d, 0, node); };
  EXPECT_EQ(state("n3"), pb::STALE);
  EXPECT_EQ(state("n2"), pb::CLEAN);
  nodes_["n2"]->gated_io->refuse = true;
  const absl::Time start = absl::Now();
  absl::Status s = vol->Write(0, std::string(4096, 'c').data(), 4096);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_EQ(state("n2"), pb::STALE);
  EXPECT_EQ(state("n1"), pb::CLEAN);
  EXPECT_EQ(ReadAll(*vol, 0, 4096), std::string(4096, 'c'));  // n1 took it: never 'b' from n2
}

// Failure policy "wait": a write a replica cannot take is held until the
// replica answers again, and acknowledged with every replica CLEAN; a flush
// is held the same way.
TEST_F(VolumeTest, WaitHoldsWritesAndFlushesUntilTheReplicaAnswers) {
  auto d = CreateDisk("d", 1 << 20, 64 << 10, {"n1", "n2"}, Policy(pb::FailurePolicy::WAIT, 20000));
  auto vol = *NewHost("h1")->Open("d", true);
  ASSERT_TRUE(vol->Write(0, std::string(4096, 'a').data(), 4096).ok());
  // Runs `io` with n2 cut off: still waiting after 400 ms, done once n2
  // answers again, and block 1 then CLEAN on both.
  auto held_until_n2_answers = [&](const std::function<absl::Status()>& io, const char* what) {
    nodes_["n2"]->gated_io->refuse = true;
    std::atomic<bool> done{false};
    absl::Status s;
    std::thread t([&] {
      s = io();
      done = true;
    });
    absl::SleepFor(absl::Milliseconds(400));
    EXPECT_FALSE(done.load()) << what << " without n2";
    nodes_["n2"]->gated_io->refuse = false;
    t.join();
    EXPECT_TRUE(s.ok()) << what << ": " << s;
    const pb::BlockChunk chunk = ChunkZero(d);
    for (const auto& r : chunk.blocks(1).replicas()) EXPECT_EQ(r.state(), pb::CLEAN) << r.node();
  };
  held_until_n2_answers([&] { return vol->Write(65536, std::string(4096, 'b').data(), 4096); },
                        "acknowledged");
  for (const char* n : {"n1", "n2"}) {
    EXPECT_EQ(nodes_[n]->Stored(d.id(), 1, 0, 4096), std::string(4096, 'b')) << n;
  }
  held_until_n2_answers([&] { return vol->Flush(); }, "flushed");
}

// "wait" past the hold time: the write fails (EIO), the replica that missed
// it is marked stale, and later writes to the block are held and fail too
// (one replica is not every replica) until a repair brings it back; reads
// with no clean replica answering are held as well, then fail.
TEST_F(VolumeTest, WaitGivesUpAfterTheHoldTime) {
  auto d = CreateDisk("d", 1 << 20, 64 << 10, {"n1", "n2"}, Policy(pb::FailurePolicy::WAIT, 300));
  auto vol = *NewHost("h1")->Open("d", true);
  ASSERT_TRUE(vol->Write(0, std::string(4096, 'a').data(), 4096).ok());
  nodes_["n2"]->gated_io->refuse = true;
  absl::Time start = absl::Now();
  EXPECT_TRUE(absl::IsUnavailable(vol->Write(0, std::string(4096, 'b').data(), 4096)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  auto chunk = (*admin_->ReadChunk(d.id(), 0))->chunk;
  EXPECT_EQ(chunk.blocks(0).replicas(1).node(), "n2");
  EXPECT_EQ(chunk.blocks(0).replicas(1).state(), pb::STALE);
  nodes_["n2"]->gated_io->refuse = false;
  EXPECT_TRUE(absl::IsUnavailable(vol->Write(0, std::string(4096, 'c').data(), 4096)));
  EXPECT_EQ(ReadAll(*vol, 0, 4096), std::string(4096, 'c'));  // from n1, the clean one
  nodes_["n1"]->gated_io->refuse = true;
  start = absl::Now();
  char buf[4096];
  EXPECT_TRUE(absl::IsUnavailable(vol->Read(0, sizeof buf, buf)));  // n2 is stale: never read
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
}

// An open volume follows a policy change made meanwhile (its spec watch):
// the same failure that degraded a write under "degrade" holds and fails it
// under "wait".
TEST_F(VolumeTest, APolicyChangeReachesAnOpenVolume) {
  auto d =
      CreateDisk("d", 1 << 20, 64 << 10, {"n1", "n2"}, Policy(pb::FailurePolicy::DEGRADE, 300));
  auto vol = *NewHost("h1")->Open("d", true);
  nodes_["n2"]->gated_io->refuse = true;
  ASSERT_TRUE(vol->Write(0, "x", 1).ok());  // block 0: n2 marked stale
  ASSERT_TRUE(admin_->SetFailurePolicy("d", Policy(pb::FailurePolicy::WAIT, 300)).ok());
  absl::Status s;
  for (int i = 0; i < 100 && s.ok(); ++i) s = vol->Write(65536, "y", 1);  // block 1
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("the policy needs 2"), absl::string_view::npos) << s;
}

// ZooKeeper out of reach of the host: writes and flushes of allocated blocks
// go on; a write that needs it (a chunk to allocate, a dead replica to mark
// stale) is held, not failed, and goes through once it is back.
TEST_F(VolumeTest, WritesThatNeedZooKeeperAreHeldWhileItIsAway) {
  constexpr uint64_t kChunkBytes = 1024ull * (64 << 10);  // a chunk's blocks
  CreateDisk("d", 4 * kChunkBytes, 64 << 10, {"n1", "n2"},
             Policy(pb::FailurePolicy::DEGRADE, 20000));
  auto vol = *NewHost("h1")->Open("d", true);
  ASSERT_TRUE(vol->Write(0, "a", 1).ok());  // chunk 0 allocated, the epoch taken
  meta::SetMemStoreReachable(host_stores_["h1"], false);
  EXPECT_TRUE(vol->Write(65536, "b", 1).ok());
  EXPECT_TRUE(vol->Flush().ok());
  auto held_until_back = [&](uint64_t off, const char* what) {
    std::atomic<bool> done{false};
    absl::Status s;
    std::thread t([&] {
      s = vol->Write(off, what, 1);
      done = true;
    });
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_FALSE(done.load()) << "not held: " << s;
    meta::SetMemStoreReachable(host_stores_["h1"], true);
    t.join();
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(ReadAll(*vol, off, 1), what);
    meta::SetMemStoreReachable(host_stores_["h1"], false);
  };
  held_until_back(2 * kChunkBytes, "c");  // a new chunk
  nodes_["n2"]->gated_io->refuse = true;
  held_until_back(2 * 65536, "d");  // n2 to mark stale first
  meta::SetMemStoreReachable(host_stores_["h1"], true);
}

// A block being copied back to n1 (SYNCING: it has only what was written
// since) whose CLEAN replica n2 fails: a write n1 alone took is not
// acknowledged and n2, the only whole copy, is never marked stale; after
// the hold the write fails and n1 goes stale instead. A flush n2 misses is
// held and fails the same way, marking nothing. (Before, n2 was marked
// stale and the block had no whole copy left: node_chaos.sh found it.)
TEST_F(VolumeTest, ASyncingReplicaAloneNeverAcknowledgesAWrite) {
  auto d =
      CreateDisk("d", 1 << 20, 64 << 10, {"n1", "n2"}, Policy(pb::FailurePolicy::DEGRADE, 300));
  auto vol = *NewHost("h1")->Open("d", true);
  ASSERT_TRUE(vol->Write(0, std::string(4096, 'a').data(), 4096).ok());
  auto state = [&](const std::string& node) { return StateOf(d, 0, node); };
  auto set_syncing = [&] {
    auto spec = admin_->UpdateChunk(d.id(), 0, [](pb::BlockChunk* c) -> absl::StatusOr<bool> {
      c->mutable_blocks(0)->mutable_replicas(0)->set_state(pb::SYNCING);  // n1
      return true;
    });
    ASSERT_TRUE(spec.ok()) << spec.status();
    for (const char* n : {"n1", "n2"}) {  // the volume is turned away until it has seen it
      ASSERT_TRUE(
          nodes_[n]->registry->Fence(d.id(), spec->layout_version(), absl::Seconds(5)).ok());
    }
  };
  set_syncing();
  ASSERT_EQ(state("n1"), pb::SYNCING);
  nodes_["n2"]->gated_io->refuse = true;
  absl::Status s = vol->Write(0, std::string(4096, 'b').data(), 4096);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(state("n2"), pb::CLEAN);
  EXPECT_EQ(state("n1"), pb::STALE);
  nodes_["n2"]->gated_io->refuse = false;
  EXPECT_EQ(ReadAll(*vol, 0, 4096), std::string(4096, 'a'));  // n2, whole and unchanged

  // The flush: n1 SYNCING again, a write both took, then n2 cannot flush.
  set_syncing();
  ASSERT_TRUE(vol->Write(0, std::string(4096, 'c').data(), 4096).ok());
  nodes_["n2"]->gated_io->refuse = true;
  s = vol->Flush();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(state("n2"), pb::CLEAN);
  nodes_["n2"]->gated_io->refuse = false;
  EXPECT_TRUE(vol->Flush().ok());  // kept dirty: flushed now
}

TEST_F(VolumeTest, ASecondWriterFencesTheFirst) {
  CreateDisk("d", 1 << 20, 64 << 10);
  auto a = *NewHost("ha")->Open("d", true);
  auto b = *NewHost("hb", "b")->Open("d", true);
  ASSERT_TRUE(a->Write(0, "A", 1).ok());
  ASSERT_TRUE(b->Write(0, "B", 1).ok());  // takes the next epoch
  absl::Status s = a->Write(0, "a", 1);
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_EQ(ReadAll(*b, 0, 1), "B");
  EXPECT_TRUE(absl::IsPermissionDenied(a->Write(1, "a", 1)));  // stays fenced
}

TEST_F(VolumeTest, ReopeningAfterAnotherHostWroteTakesANewEpoch) {
  CreateDisk("d", 1 << 20, 64 << 10);
  Cluster* ha = NewHost("ha");
  {
    auto a = *ha->Open("d", true);
    ASSERT_TRUE(a->Write(0, "1", 1).ok());
  }
  {
    auto b = *NewHost("hb")->Open("d", true);
    ASSERT_TRUE(b->Write(0, "2", 1).ok());
  }
  auto a = *ha->Open("d", true);
  EXPECT_EQ(ReadAll(*a, 0, 1), "2");
  EXPECT_TRUE(a->Write(0, "3", 1).ok());
  EXPECT_EQ(admin_->Writer(admin_->LookupName("d").value())->epoch(), 3u);
}

TEST_F(VolumeTest, AnotherHostsAllocationIsSeenByAReaderThatSawNone) {
  CreateDisk("d", 1 << 20, 64 << 10);
  auto reader = *NewHost("hr")->Open("d", false);
  EXPECT_EQ(ReadAll(*reader, 0, 4), std::string(4, '\0'));  // unallocated
  auto writer = *NewHost("hw")->Open("d", true);
  ASSERT_TRUE(writer->Write(0, "data", 4).ok());
  EXPECT_EQ(ReadAll(*reader, 0, 4), "data");  // no stale "unallocated" cache
}

TEST_F(VolumeTest, AHostWithAnOldLayoutIsTurnedAwayAndRetries) {
  auto d = CreateDisk("d", 1 << 20, 64 << 10);
  auto a = *NewHost("ha")->Open("d", true);
  ASSERT_TRUE(a->Write(0, std::string(4096, 'a').data(), 4096).ok());
  auto b = *NewHost("hb")->Open("d", false);
  EXPECT_EQ(ReadAll(*b, 0, 1), "a");         // b now caches the chunk at layout 1
  auto spec = admin_->Resize("d", 2 << 20);  // layout 2
  ASSERT_TRUE(spec.ok());
  // Both replicas learn layout 2 (as from another host's request), so b's
  // layout-1 read is refused everywhere: it can only succeed by re-reading.
  pb::IoHeader h;
  h.set_disk_id(d.id());
  h.set_layout_version(spec->layout_version());
  for (const char* n : {"n1", "n2"}) ASSERT_TRUE(nodes_[n]->registry->Admit(h, false).ok());
  h.set_layout_version(d.layout_version());
  ASSERT_TRUE(absl::IsFailedPrecondition(nodes_["n1"]->registry->Admit(h, false).status()));
  EXPECT_EQ(ReadAll(*b, 0, 1), "a");
  EXPECT_EQ(b->attr().size, 2u << 20);
}

TEST_F(VolumeTest, AHostKeepsOneWatchPerNodeFolderAsNodesComeAndGo) {
  NewHost("h1");
  for (int i = 0; i < 4; ++i) {
    pb::NodeInfo n;
    n.set_id("extra" + std::to_string(i));
    n.set_address("inproc:n1");
    auto session = meta::NewMemMetaStore(tree_);
    meta::Catalog c(session.get(), "/ukai");
    ASSERT_TRUE(c.RegisterNode(n, pb::NodeLive()).ok());  // nodes/ and live/ change
  }                                                       // each session ends: live/ changes again
  meta::DrainMemCallbacks(*tree_);
  EXPECT_EQ(meta::CountMemWatches(*tree_, "/ukai/live"), 1u);
  EXPECT_EQ(meta::CountMemWatches(*tree_, "/ukai/nodes"), 1u);
}

TEST_F(VolumeTest, ACorruptPageIsReadFromTheOtherReplica) {
  auto d = CreateDisk("d", 1 << 20, 64 << 10);
  auto vol = *NewHost("h1")->Open("d", true);
  std::string data(128 << 10, 'z');
  ASSERT_TRUE(vol->Write(0, data.data(), data.size()).ok());
  ASSERT_TRUE(vol->Flush().ok());
  // One page rotten on n1 in block 0, on n2 in block 1: reads must still be
  // right (a read that meets the rotten copy marks it stale, so each block
  // gets its own).
  ASSERT_TRUE(nodes_["n1"]->pages->Corrupt(node::PageKey{d.id(), 0, 0, 1}, 10));
  ASSERT_TRUE(nodes_["n2"]->pages->Corrupt(node::PageKey{d.id(), 1, 0, 1}, 10));
  EXPECT_TRUE(ReadAll(*vol, 0, 128 << 10) == data);
  EXPECT_TRUE(ReadAll(*vol, 0, 128 << 10) == data);
}

}  // namespace
}  // namespace ukai::client
