// The node answers every malformed or out-of-date request with an error code,
// never a crash, and keeps serving.
#include "node/block_io.h"

#include <gtest/gtest.h>

#include "common/wire_format.h"
#include "node/data_service.h"

#include "meta/mem_cluster_testing.h"

namespace ukai::node {
namespace {

class BlockIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mc_.ok);
    store_ = std::make_unique<BlockStore>(std::make_unique<MemPageStore>());
    reg_ = std::make_unique<DiskRegistry>(&mc_.catalog, store_.get());
    ASSERT_TRUE(reg_->Start().ok());
    pb::NodeInfo self;
    self.set_id("n1");
    svc_ = std::make_unique<DataService>(self, reg_.get(), store_.get());
    io_ = std::make_unique<BlockIo>(reg_.get(), store_.get());
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
    len_ = len;
    return w;
  }
  absl::StatusCode Write(const pb::WriteRequest& w) {
    return io_->Write(w, std::string(len_, 'w')).code();
  }
  absl::StatusCode Read(uint64_t disk, uint64_t block, uint32_t off, uint32_t len) {
    pb::ReadRequest q;
    q.mutable_hdr()->set_disk_id(disk);
    q.mutable_hdr()->set_layout_version(spec_.layout_version());
    q.set_block(block);
    q.set_offset(off);
    q.set_length(len);
    std::string out;
    absl::Status s = io_->Read(q, &out);
    if (s.ok()) {
      EXPECT_EQ(out.size(), len);
    }
    return s.code();
  }

  meta::MemCluster mc_;
  std::unique_ptr<BlockStore> store_;
  std::unique_ptr<DiskRegistry> reg_;
  std::unique_ptr<DataService> svc_;
  std::unique_ptr<BlockIo> io_;
  size_t len_ = 0;
  pb::DiskSpec spec_;
  uint64_t epoch_ = 0;
};

TEST_F(BlockIoTest, RejectsMalformedRequestsAndKeepsServing) {
  using absl::StatusCode;
  EXPECT_EQ(Write(W(0, 0, 4096)), StatusCode::kOk);
  EXPECT_EQ(Write(W(0, 0, 0)), StatusCode::kInvalidArgument);                // empty
  EXPECT_EQ(Write(W(0, (4 << 20) - 10, 20)), StatusCode::kInvalidArgument);  // crosses the block
  EXPECT_EQ(Write(W(0, 5 << 20, 1)), StatusCode::kInvalidArgument);          // offset past the block
  EXPECT_EQ(Write(W(2, 2 << 20, 1)), StatusCode::kOutOfRange);              // past the disk
  EXPECT_EQ(Write(W(99, 0, 1)), StatusCode::kOutOfRange);                   // no such block
  EXPECT_EQ(Write(W(0, 0, (4 << 20) + 1)), StatusCode::kInvalidArgument);    // more than a block
  auto unknown = W(0, 0, 1);
  unknown.mutable_hdr()->set_disk_id(777);
  EXPECT_EQ(Write(unknown), StatusCode::kNotFound);
  auto no_epoch = W(0, 0, 1);
  no_epoch.mutable_hdr()->set_epoch(0);
  EXPECT_EQ(Write(no_epoch), StatusCode::kPermissionDenied);
  auto old_layout = W(0, 0, 1);
  old_layout.mutable_hdr()->set_layout_version(0);
  EXPECT_EQ(Write(old_layout), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Read(spec_.id(), 0, 0, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(Read(spec_.id(), 3, 0, 512), StatusCode::kOutOfRange);
  EXPECT_EQ(Read(spec_.id(), 0, UINT32_MAX, UINT32_MAX), StatusCode::kInvalidArgument);
  EXPECT_EQ(Read(12345, 0, 0, 512), StatusCode::kNotFound);
  // Still serving, and the rejected requests changed nothing.
  EXPECT_EQ(Read(spec_.id(), 0, 0, 4096), StatusCode::kOk);
  EXPECT_EQ((*store_->DiskBytes())[spec_.id()], 4096u);
}

TEST_F(BlockIoTest, TransportFramesAreDecodedAndBadOnesRefused) {
  pb::WriteRequest w = W(0, 8192, 4096);
  std::string reply;
  EXPECT_TRUE(io_->Handle(wire::kWrite, w.SerializeAsString(), std::string(4096, 'z'), &reply, true).ok());
  pb::ReadRequest q;
  q.mutable_hdr()->set_disk_id(spec_.id());
  q.mutable_hdr()->set_layout_version(spec_.layout_version());
  q.set_offset(8192);
  q.set_length(4096);
  ASSERT_TRUE(io_->Handle(wire::kRead, q.SerializeAsString(), "", &reply, true).ok());
  EXPECT_EQ(reply, std::string(4096, 'z'));
  EXPECT_TRUE(io_->Handle(wire::kFlush, "", "", &reply, true).ok());
  EXPECT_TRUE(io_->Slow(wire::kFlush));
  EXPECT_FALSE(io_->Slow(wire::kWrite));
  EXPECT_TRUE(absl::IsInvalidArgument(io_->Handle(wire::kWrite, "\xff\xff\xff", "x", &reply, true)));
  EXPECT_TRUE(absl::IsUnimplemented(io_->Handle(99, "", "", &reply, true)));
}


// kPull answers with the stored pages then one flag byte per page asked for,
// and refuses ranges outside the block or over the per-call limit.
TEST_F(BlockIoTest, PullSendsStoredPagesThenTheirFlags) {
  ASSERT_EQ(io_->Write(W(2, 4096, 4096), std::string(4096, 'a')).code(), absl::StatusCode::kOk);
  ASSERT_EQ(io_->Write(W(2, 3 * 4096, 4096), std::string(4096, 'b')).code(), absl::StatusCode::kOk);
  auto pull = [&](uint64_t block, uint32_t first, uint32_t pages, std::string* out) {
    pb::PullRequest p;
    p.mutable_hdr()->set_disk_id(spec_.id());
    p.mutable_hdr()->set_layout_version(spec_.layout_version());
    p.set_block(block);
    p.set_first_page(first);
    p.set_pages(pages);
    out->clear();
    return io_->Handle(wire::kPull, p.SerializeAsString(), "", out, true);
  };
  std::string out;
  ASSERT_TRUE(pull(2, 0, 5, &out).ok());
  EXPECT_EQ(out, std::string(4096, 'a') + std::string(4096, 'b') + std::string("\0\1\0\1\0", 5));
  ASSERT_TRUE(pull(2, 4, 1, &out).ok());  // nothing stored: only the flag
  EXPECT_EQ(out, std::string(1, '\0'));
  EXPECT_TRUE(io_->Background(wire::kPull));
  EXPECT_FALSE(io_->Background(wire::kRead));
  // Block 2 is the disk's last, 2 MiB long: 512 pages.
  EXPECT_TRUE(pull(2, 256, 256, &out).ok());
  EXPECT_TRUE(absl::IsOutOfRange(pull(2, 300, 256, &out)));  // past the short block's end
  EXPECT_TRUE(absl::IsOutOfRange(pull(0, 0, 257, &out)));    // over kMaxPullPages
  EXPECT_TRUE(absl::IsOutOfRange(pull(0, 0, 0, &out)));
  EXPECT_TRUE(absl::IsOutOfRange(pull(3, 0, 1, &out)));  // no such block
  EXPECT_TRUE(absl::IsInvalidArgument(io_->Handle(wire::kPull, "\xff\xff", "", &out, true)));
}
TEST_F(BlockIoTest, DropDiskRefusesADiskThatStillExists) {
  grpc::ServerContext ctx;
  pb::DropDiskRequest q;
  q.set_disk_id(spec_.id());
  pb::DropDiskResponse r;
  EXPECT_EQ(svc_->DropDisk(&ctx, &q, &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace ukai::node
