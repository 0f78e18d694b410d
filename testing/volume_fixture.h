// The fixture of libukai's data-path tests (client/volume_test.cc,
// client/snapshot_test.cc, control/snapshot_jobs_test.cc):
// three real node services on in-memory stores (n1, n2 in site a; n3 in b),
// hosts connected to them, and helpers to make disks and look at them.
#ifndef UKAI_TESTING_VOLUME_FIXTURE_H_
#define UKAI_TESTING_VOLUME_FIXTURE_H_

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "client/cluster_internal.h"
#include "meta/catalog.h"
#include "testing/test_nodes.h"

namespace ukai::harness {

using client::Cluster;
using client::ClusterOptions;
using client::ConnectCluster;
using client::Volume;

inline pb::FailurePolicy Policy(pb::FailurePolicy::OnReplicaFailure mode, uint32_t hold_ms,
                                uint32_t min_replicas = 0) {
  pb::FailurePolicy f;
  f.set_on_replica_failure(mode);
  f.set_hold_ms(hold_ms);
  f.set_min_replicas(min_replicas);
  return f;
}

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = meta::NewMemMetaTree();
    admin_meta_ = meta::NewMemMetaStore(tree_);
    admin_ = std::make_unique<meta::Catalog>(admin_meta_.get(), "/ukai");
    ASSERT_TRUE(admin_->Init().ok());
    for (auto [id, site] : {std::pair{"n1", "a"}, {"n2", "a"}, {"n3", "b"}}) {
      nodes_[id] = std::make_unique<TestNode>(tree_, id, site);
    }
  }
  void TearDown() override {
    clusters_.clear();
    nodes_.clear();
  }
  Cluster* NewHost(const std::string& host, const std::string& site = "a") {
    ClusterOptions o;
    o.host = host;
    o.site = site;
    o.rpc_timeout_ms = 2000;
    auto store = meta::NewMemMetaStore(tree_);
    host_stores_[host] = store.get();
    auto c = ConnectCluster(o, std::move(store), [this](const std::string& addr) {
      return nodes_.at(addr.substr(strlen("inproc:")))->channel;
    });
    EXPECT_TRUE(c.ok()) << c.status();
    clusters_.push_back(std::move(*c));
    return clusters_.back().get();
  }
  pb::DiskSpec CreateDisk(const std::string& name, uint64_t size, uint32_t bs,
                          std::vector<std::string> on_nodes = {"n1", "n2"},
                          const pb::FailurePolicy& failure = {}) {
    pb::CreateDiskRequest r;
    r.set_name(name);
    r.set_size(size);
    r.set_block_size(bs);
    *r.mutable_failure() = failure;
    for (auto& n : on_nodes) r.mutable_placement()->add_nodes(n);
    auto d = admin_->CreateDisk(r);
    EXPECT_TRUE(d.ok()) << d.status();
    return *d;
  }
  // The disk's first block table chunk, as ZooKeeper has it now (a copy).
  pb::BlockChunk ChunkZero(const pb::DiskSpec& d) {
    auto c = admin_->ReadChunk(d.id(), 0);
    EXPECT_TRUE(c.ok() && c->has_value());
    return c.ok() && c->has_value() ? (*c)->chunk : pb::BlockChunk();
  }
  // `node`'s replica state for `block` (of the first chunk); MIN if it has none.
  pb::ReplicaState StateOf(const pb::DiskSpec& d, uint64_t block, const std::string& node) {
    const pb::BlockChunk chunk = ChunkZero(d);
    for (const auto& r : chunk.blocks(static_cast<int>(block)).replicas()) {
      if (r.node() == node) return r.state();
    }
    return pb::ReplicaState_MIN;
  }
  // What `ukaictl snap create` does: the snapshot in ZooKeeper, then every
  // node fenced at its layout.
  pb::DiskSpec Snapshot(const std::string& disk, const std::string& snap) {
    auto s = admin_->CreateSnapshot(disk, snap);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return {};
    for (auto& [id, n] : nodes_) {
      absl::Status f = n->registry->Fence(s->id(), s->layout_version(), absl::Seconds(5));
      EXPECT_TRUE(f.ok()) << id << ": " << f;
    }
    return *s;
  }
  // The objects (block, generation) `node` holds of disk `id`.
  std::vector<std::pair<uint64_t, uint64_t>> ObjectsOn(const std::string& node, uint64_t id) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    auto objects = nodes_.at(node)->store->Objects(id, 0, UINT64_MAX);
    EXPECT_TRUE(objects.ok()) << objects.status();
    if (objects.ok()) {
      for (const auto& o : *objects) out.emplace_back(o.block, o.generation);
    }
    return out;
  }
  std::string ReadAll(Volume& v, uint64_t off, size_t len) {
    std::string out(len, '\0');
    absl::Status s = v.Read(off, len, out.data());
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  // ReadAsync, waited for: its status, and what landed in the buffer.
  std::pair<absl::Status, std::string> ReadAsyncAll(Volume& v, uint64_t off, size_t len) {
    std::string out(len, '\x55');
    absl::Notification done;
    absl::Status status;
    v.ReadAsync(off, len, out.data(), [&](absl::Status s) {
      status = s;
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return {status, out};
  }

  std::shared_ptr<meta::MemMetaTree> tree_;
  std::unique_ptr<meta::MetaStore> admin_meta_;
  std::unique_ptr<meta::Catalog> admin_;
  std::map<std::string, std::unique_ptr<TestNode>> nodes_;
  std::vector<std::unique_ptr<Cluster>> clusters_;
  std::map<std::string, meta::MetaStore*> host_stores_;  // each host's ZooKeeper session
};

}  // namespace ukai::harness

#endif  // UKAI_TESTING_VOLUME_FIXTURE_H_
