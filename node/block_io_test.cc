// The node answers every malformed or out-of-date request with an error code,
// never a crash, and keeps serving.
#include "node/data_service.h"

#include <gtest/gtest.h>

#include "meta/mem_cluster_testing.h"

namespace ukai::node {
namespace {

class DataServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mc_.ok);
    store_ = std::make_unique<BlockStore>(std::make_unique<MemPageStore>());
    reg_ = std::make_unique<DiskRegistry>(&mc_.catalog, store_.get());
    ASSERT_TRUE(reg_->Start().ok());
    pb::NodeInfo self;
    self.set_id("n1");
    svc_ = std::make_unique<DataService>(self, reg_.get(), store_.get());
    spec_ = *mc_.CreateDisk("d", 10 << 20);  // 2.5 blocks of 4 MiB
    epoch_ = *mc_.catalog.TakeWriterEpoch(spec_.id(), "h", "a");
  }
  pb::WriteRequest W(uint64_t block, uint32_t off, size_t len) {
    pb::WriteRequest w;
    w.mutable_hdr()->set_disk_id(spec_.id());
    w.mutable_hdr()->set_layout_version(spec_.layout_version());
    w.mutable_hdr()->set_epoch(epoch_);
    w.set_block(block);
    w.set_offset(off);
    w.set_data(std::string(len, 'w'));
    return w;
  }
  grpc::StatusCode Write(const pb::WriteRequest& w) {
    grpc::ServerContext ctx;
    pb::WriteResponse r;
    return svc_->Write(&ctx, &w, &r).error_code();
  }
  grpc::StatusCode Read(uint64_t disk, uint64_t block, uint32_t off, uint32_t len) {
    pb::ReadRequest q;
    q.mutable_hdr()->set_disk_id(disk);
    q.mutable_hdr()->set_layout_version(spec_.layout_version());
    q.set_block(block);
    q.set_offset(off);
    q.set_length(len);
    grpc::ServerContext ctx;
    pb::ReadResponse r;
    return svc_->Read(&ctx, &q, &r).error_code();
  }

  meta::MemCluster mc_;
  std::unique_ptr<BlockStore> store_;
  std::unique_ptr<DiskRegistry> reg_;
  std::unique_ptr<DataService> svc_;
  pb::DiskSpec spec_;
  uint64_t epoch_ = 0;
};

TEST_F(DataServiceTest, RejectsMalformedRequestsAndKeepsServing) {
  using grpc::StatusCode;
  EXPECT_EQ(Write(W(0, 0, 4096)), StatusCode::OK);
  EXPECT_EQ(Write(W(0, 0, 0)), StatusCode::INVALID_ARGUMENT);                // empty
  EXPECT_EQ(Write(W(0, (4 << 20) - 10, 20)), StatusCode::INVALID_ARGUMENT);  // crosses the block
  EXPECT_EQ(Write(W(0, 5 << 20, 1)), StatusCode::INVALID_ARGUMENT);          // offset past the block
  EXPECT_EQ(Write(W(2, 2 << 20, 1)), StatusCode::OUT_OF_RANGE);              // past the disk
  EXPECT_EQ(Write(W(99, 0, 1)), StatusCode::OUT_OF_RANGE);                   // no such block
  EXPECT_EQ(Write(W(0, 0, (4 << 20) + 1)), StatusCode::INVALID_ARGUMENT);    // more than a block
  auto unknown = W(0, 0, 1);
  unknown.mutable_hdr()->set_disk_id(777);
  EXPECT_EQ(Write(unknown), StatusCode::NOT_FOUND);
  auto no_epoch = W(0, 0, 1);
  no_epoch.mutable_hdr()->set_epoch(0);
  EXPECT_EQ(Write(no_epoch), StatusCode::PERMISSION_DENIED);
  auto old_layout = W(0, 0, 1);
  old_layout.mutable_hdr()->set_layout_version(0);
  EXPECT_EQ(Write(old_layout), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Read(spec_.id(), 0, 0, 0), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Read(spec_.id(), 3, 0, 512), StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(Read(spec_.id(), 0, UINT32_MAX, UINT32_MAX), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Read(12345, 0, 0, 512), StatusCode::NOT_FOUND);
  // Still serving, and the rejected requests changed nothing.
  EXPECT_EQ(Read(spec_.id(), 0, 0, 4096), StatusCode::OK);
  EXPECT_EQ((*store_->DiskBytes())[spec_.id()], 4096u);
}

TEST_F(DataServiceTest, DropDiskRefusesADiskThatStillExists) {
  grpc::ServerContext ctx;
  pb::DropDiskRequest q;
  q.set_disk_id(spec_.id());
  pb::DropDiskResponse r;
  EXPECT_EQ(svc_->DropDisk(&ctx, &q, &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace ukai::node
