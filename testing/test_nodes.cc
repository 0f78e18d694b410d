#include "testing/test_nodes.h"

#include <gtest/gtest.h>

#include <cstring>

namespace ukai::harness {

TestNode::TestNode(std::shared_ptr<meta::MemMetaTree> tree, const std::string& id,
                   const std::string& site, uint64_t copy_cap_bps) {
  meta = meta::NewMemMetaStore(tree);
  catalog = std::make_unique<meta::Catalog>(meta.get(), "/ukai");
  auto mem = std::make_unique<node::MemPageStore>();
  pages = mem.get();
  store = std::make_unique<node::BlockStore>(std::move(mem));
  registry = std::make_unique<node::DiskRegistry>(catalog.get(), store.get());
  info.set_id(id);
  info.set_site(site);
  info.set_address("inproc:" + id);
  io = std::make_unique<node::BlockIo>(registry.get(), store.get());
  gated_io = std::make_unique<GatedIo>(io.get());
  io_server = std::make_unique<wire::WireServer>(gated_io.get());
  EXPECT_TRUE(io_server->Start("127.0.0.1:0").ok());
  info.set_io_address("127.0.0.1:" + std::to_string(io_server->port()));
  service = std::make_unique<node::NodeOpsService>(info, registry.get(), store.get());
  gate = std::make_unique<GatedService>(service.get());
  copy = std::make_unique<node::CopyService>(id, catalog.get(), registry.get(), store.get(),
                                             copy_cap_bps, absl::Milliseconds(500));
  grpc::ServerBuilder b;
  b.RegisterService(gate.get());
  b.RegisterService(copy.get());
  server = b.BuildAndStart();
  channel = server->InProcessChannel(grpc::ChannelArguments());
  EXPECT_TRUE(catalog->RegisterNode(info, pb::NodeLive()).ok());
  EXPECT_TRUE(registry->Start().ok());
}

TestNode::~TestNode() {
  io_server->Shutdown();
  server->Shutdown();
}

// Like kill -9: the node stops answering and its liveness record goes.
void TestNode::Kill() {
  gate->dead = true;
  io_server->Shutdown();
  (void)meta->Delete("/ukai/live/" + info.id());
}

std::string TestNode::Stored(uint64_t disk, uint64_t block, uint32_t off, uint32_t len) {
  std::string out;
  EXPECT_TRUE(store->Read({disk, block, 0}, off, len, &out).ok());
  return out;
}

ChannelFactory InProcess(const std::map<std::string, std::unique_ptr<TestNode>>* nodes) {
  return [nodes](const std::string& addr) -> std::shared_ptr<grpc::Channel> {
    return nodes->at(addr.substr(strlen("inproc:")))->channel;
  };
}

}  // namespace ukai::harness
