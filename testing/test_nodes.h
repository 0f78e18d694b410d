// For tests of the data path: storage nodes in one process, on in-memory
// stores (MemMetaStore for ZooKeeper, MemPageStore for RocksDB), serving the
// block I/O transport on loopback and their gRPC services in-process.
// Test-only (the ukai_testing library).
#ifndef UKAI_TESTING_TEST_NODES_H_
#define UKAI_TESTING_TEST_NODES_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/channel.h"
#include "common/wire_server.h"
#include "meta/catalog.h"
#include "node/block_io.h"
#include "node/copy_service.h"
#include "node/disk_registry.h"
#include "node/node_ops_service.h"

namespace ukai::harness {

struct TestNode;

// Channels to "inproc:<id>" addresses: the in-process channel of node <id>.
ChannelFactory InProcess(const std::map<std::string, std::unique_ptr<TestNode>>* nodes);

// Forwards to the real NodeOpsService until the node is "killed", then answers
// UNAVAILABLE like a dead peer. (gRPC 1.51's in-process transport crashes on
// calls made after its server shut down, so the server stays up.)
class GatedService final : public pb::NodeOps::Service {
 public:
  explicit GatedService(node::NodeOpsService* real) : real_(real) {}
  std::atomic<bool> dead{false};
#define UKAI_GATE(Method, Req, Resp)                                                    \
  grpc::Status Method(grpc::ServerContext* c, const pb::Req* q, pb::Resp* r) override { \
    if (dead) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "node down");          \
    return real_->Method(c, q, r);                                                      \
  }
  UKAI_GATE(Ping, PingRequest, PingResponse)
  UKAI_GATE(Stat, StatRequest, StatResponse)
  UKAI_GATE(DropDisk, DropDiskRequest, DropDiskResponse)
#undef UKAI_GATE

 private:
  node::NodeOpsService* real_;
};

// Block I/O that can be refused for a while, like a node stopped (SIGSTOP)
// or cut off and back: while `refuse` is set every request fails UNAVAILABLE.
// `after`, set before any traffic, runs once each blocking request is
// handled, before its answer goes back (something that happens meanwhile
// elsewhere).
class GatedIo final : public wire::WireHandler {
 public:
  explicit GatedIo(node::BlockIo* real) : real_(real) {}
  std::atomic<bool> refuse{false};
  std::function<void(uint16_t method)> after;
  absl::Status Handle(const wire::WirePeer& peer, uint16_t method, absl::string_view meta,
                      absl::string_view data, std::string* reply_data, bool may_block) override {
    if (refuse) return absl::UnavailableError("node cut off");
    absl::Status s = real_->Handle(peer, method, meta, data, reply_data, may_block);
    if (after) after(method);
    return s;
  }
  bool Slow(uint16_t method) const override { return real_->Slow(method); }
  bool Background(uint16_t method) const override { return real_->Background(method); }
  absl::Status HandleNoWait(const wire::WirePeer& peer, uint16_t method, absl::string_view meta,
                            absl::string_view data, std::string* reply_data,
                            std::unique_ptr<Deferred>* deferred) override {
    if (refuse) return absl::UnavailableError("node cut off");
    return real_->HandleNoWait(peer, method, meta, data, reply_data, deferred);
  }

 private:
  node::BlockIo* real_;
};

// One storage node: its own metadata session, store, registry and server.
struct TestNode {
  // `copy_cap_bps`: the node's cap on copies into it (ukai-node --copy-bandwidth).
  TestNode(std::shared_ptr<meta::MemMetaTree> tree, const std::string& id, const std::string& site,
           uint64_t copy_cap_bps = 0);
  ~TestNode();
  // Like kill -9: the node stops answering and its liveness record goes.
  void Kill();
  // What the node's store holds of object (disk, block, generation 0).
  std::string Stored(uint64_t disk, uint64_t block, uint32_t off, uint32_t len);

  pb::NodeInfo info;
  std::unique_ptr<meta::MetaStore> meta;
  std::unique_ptr<meta::Catalog> catalog;
  node::MemPageStore* pages;
  std::unique_ptr<node::BlockStore> store;
  std::unique_ptr<node::DiskRegistry> registry;
  std::unique_ptr<node::BlockIo> io;
  std::unique_ptr<GatedIo> gated_io;  // gated_io->refuse: block I/O cut off for a while
  std::unique_ptr<wire::WireServer> io_server;
  std::unique_ptr<node::NodeOpsService> service;
  std::unique_ptr<GatedService> gate;
  std::unique_ptr<node::CopyService> copy;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
};

}  // namespace ukai::harness

#endif  // UKAI_TESTING_TEST_NODES_H_
