// The relocation and repair tests' fixture: four nodes (n1, n2 in site a;
// n3, n4 in site b) with real node services on in-memory stores, a libukai
// volume on a disk of 64 blocks, a writer that keeps a byte model, and
// jobs run to their end by the test itself (control::RunJob).
#ifndef UKAI_TESTING_RELOCATION_FIXTURE_H_
#define UKAI_TESTING_RELOCATION_FIXTURE_H_

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/cluster_internal.h"
#include "common/executor.h"
#include "control/grpc_node_peers.h"
#include "control/jobs.h"
#include "meta/catalog.h"
#include "testing/test_nodes.h"

namespace ukai::harness {

using client::Cluster;
using client::ClusterOptions;
using client::ConnectCluster;
using client::Volume;

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
    copy_nodes_ = std::make_unique<control::GrpcNodePeers>(admin_.get(), InProcess(&nodes_));
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
  absl::Status RunJob(const std::string& id, control::JobOptions o = {}) {
    o.retry_min = absl::Milliseconds(10);
    o.retry_max = absl::Milliseconds(50);
    control::JobEnv env{"runner", admin_.get(), copy_nodes_.get(), &executor_, SystemClock(), o,
                        {}};
    return control::RunJob(env, id, [] { return false; });
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
  std::unique_ptr<control::GrpcNodePeers> copy_nodes_;
  Executor executor_{"test-jobs", 8, 64};
  std::unique_ptr<Cluster> cluster_;
  std::shared_ptr<Volume> vol_;
  pb::DiskSpec disk_;
  absl::Mutex model_mu_;
  std::string model_;
  std::thread writer_;
  std::atomic<bool> stop_writer_{false};
  std::atomic<int> writes_{0};
};

}  // namespace ukai::harness

#endif  // UKAI_TESTING_RELOCATION_FIXTURE_H_
