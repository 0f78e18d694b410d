// The node answers every malformed or out-of-date request with an error code,
// never a crash, and keeps serving.
#include "node/block_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/wire_format.h"
#include "meta/mem_cluster_testing.h"
#include "node/node_ops_service.h"
#include "node/page_cache_testing.h"

namespace ukai::node {
namespace {

const wire::WirePeer kAnyone;  // plaintext: the transport says nothing of the peer

wire::WirePeer Certified(const std::string& role, const std::string& id) {
  return wire::WirePeer::Certified(role, id);
}

class BlockIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mc_.ok);
    store_ = std::make_unique<BlockStore>(MakePages());
    reg_ = std::make_unique<DiskRegistry>(&mc_.catalog, store_.get());
    ASSERT_TRUE(reg_->Start().ok());
    pb::NodeInfo self;
    self.set_id("n1");
    svc_ = std::make_unique<NodeOpsService>(self, reg_.get(), store_.get());
    io_ = std::make_unique<BlockIo>(reg_.get(), store_.get());
    spec_ = *mc_.CreateDisk("d", 10 << 20);  // 2.5 blocks of 4 MiB
    epoch_ = *mc_.catalog.TakeWriterEpoch(spec_.id(), "h", "a");
  }
  virtual std::unique_ptr<PageStore> MakePages() { return std::make_unique<MemPageStore>(); }
  // The disk's header at its current layout (`epoch` for writes).
  pb::IoHeader Hdr(uint64_t epoch = 0) const {
    pb::IoHeader h;
    h.set_disk_id(spec_.id());
    h.set_layout_version(spec_.layout_version());
    if (epoch != 0) h.set_epoch(epoch);
    return h;
  }
  pb::ReadRequest R(uint64_t block, uint32_t off, uint32_t len) {
    pb::ReadRequest q;
    *q.mutable_hdr() = Hdr();
    q.set_block(block);
    q.set_offset(off);
    q.set_length(len);
    return q;
  }
  pb::WriteRequest W(uint64_t block, uint32_t off, size_t len) {
    pb::WriteRequest w;
    *w.mutable_hdr() = Hdr(epoch_);
    w.set_block(block);
    w.set_offset(off);
    len_ = len;
    return w;
  }
  absl::StatusCode Write(const pb::WriteRequest& w) {
    return io_->Write(w, std::string(len_, 'w')).code();
  }
  absl::StatusCode Read(uint64_t disk, uint64_t block, uint32_t off, uint32_t len) {
    pb::ReadRequest q = R(block, off, len);
    q.mutable_hdr()->set_disk_id(disk);
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
  std::unique_ptr<NodeOpsService> svc_;
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
  EXPECT_EQ(Write(W(0, 5 << 20, 1)), StatusCode::kInvalidArgument);        // offset past the block
  EXPECT_EQ(Write(W(2, 2 << 20, 1)), StatusCode::kOutOfRange);             // past the disk
  EXPECT_EQ(Write(W(99, 0, 1)), StatusCode::kOutOfRange);                  // no such block
  EXPECT_EQ(Write(W(0, 0, (4 << 20) + 1)), StatusCode::kInvalidArgument);  // more than a block
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

// The epoch alone is not enough: a write must come from the identity that
// took it, and the refusal does not say the epoch.
TEST_F(BlockIoTest, OnlyTheEpochsHolderWritesAndABackupReadsSnapshotsOnly) {
  epoch_ = *mc_.catalog.TakeWriterEpoch(spec_.id(), "hv7", "a", "frontend hv7");
  const std::string data(4096, 'w');
  EXPECT_TRUE(io_->Write(W(0, 0, 4096), data, Caller{"frontend hv7"}).ok());
  absl::Status thief = io_->Write(W(0, 0, 4096), data, Caller{"frontend hv9"});
  EXPECT_TRUE(absl::IsPermissionDenied(thief)) << thief;
  EXPECT_EQ(thief.message().find(std::to_string(epoch_) + " "), std::string::npos) << thief;
  EXPECT_NE(thief.message().find("frontend hv9"), std::string::npos) << thief;
  pb::CopyUpRequest cu;
  *cu.mutable_hdr() = Hdr(epoch_);
  cu.set_generation(spec_.generation() + 1);
  cu.set_empty(true);
  EXPECT_TRUE(absl::IsPermissionDenied(io_->CopyUp(cu, Caller{"admin ops"})));

  Caller backup;
  backup.snapshots_only = true;
  std::string out;
  pb::ReadRequest live = R(0, 0, 4096);
  live.set_generation(spec_.generation());  // written since the newest snapshot
  EXPECT_TRUE(absl::IsPermissionDenied(io_->Read(live, &out, true, backup)));
  EXPECT_TRUE(io_->Read(live, &out, true, Caller{}).ok());
  if (spec_.generation() > 0) {
    pb::ReadRequest frozen = R(0, 0, 4096);
    frozen.set_generation(spec_.generation() - 1);
    EXPECT_TRUE(io_->Read(frozen, &out, true, backup).ok());
  }
}

TEST_F(BlockIoTest, TransportFramesAreDecodedAndBadOnesRefused) {
  pb::WriteRequest w = W(0, 8192, 4096);
  std::string reply;
  EXPECT_TRUE(io_->Handle(kAnyone, wire::kWrite, w.SerializeAsString(), std::string(4096, 'z'),
                          &reply, true)
                  .ok());
  pb::ReadRequest q = R(0, 8192, 4096);
  ASSERT_TRUE(io_->Handle(kAnyone, wire::kRead, q.SerializeAsString(), "", &reply, true).ok());
  EXPECT_EQ(reply, std::string(4096, 'z'));
  EXPECT_TRUE(io_->Handle(kAnyone, wire::kFlush, "", "", &reply, true).ok());
  EXPECT_TRUE(io_->Slow(wire::kFlush));
  EXPECT_FALSE(io_->Slow(wire::kWrite));
  EXPECT_TRUE(absl::IsInvalidArgument(
      io_->Handle(kAnyone, wire::kWrite, "\xff\xff\xff", "x", &reply, true)));
  EXPECT_TRUE(absl::IsUnimplemented(io_->Handle(kAnyone, 99, "", "", &reply, true)));
}

// kPull answers with the stored pages then one flag byte per page asked for,
// and refuses ranges outside the block or over the per-call limit.
TEST_F(BlockIoTest, PullSendsStoredPagesThenTheirFlags) {
  ASSERT_EQ(io_->Write(W(2, 4096, 4096), std::string(4096, 'a')).code(), absl::StatusCode::kOk);
  ASSERT_EQ(io_->Write(W(2, 3 * 4096, 4096), std::string(4096, 'b')).code(), absl::StatusCode::kOk);
  auto pull = [&](uint64_t block, uint32_t first, uint32_t pages, std::string* out) {
    pb::PullRequest p;
    *p.mutable_hdr() = Hdr();
    p.set_block(block);
    p.set_first_page(first);
    p.set_pages(pages);
    out->clear();
    return io_->Handle(kAnyone, wire::kPull, p.SerializeAsString(), "", out, true);
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
  EXPECT_TRUE(
      absl::IsInvalidArgument(io_->Handle(kAnyone, wire::kPull, "\xff\xff", "", &out, true)));
}
TEST_F(BlockIoTest, DropDiskRefusesADiskThatStillExists) {
  grpc::ServerContext ctx;
  pb::DropDiskRequest q;
  q.set_disk_id(spec_.id());
  pb::DropDiskResponse r;
  EXPECT_EQ(svc_->DropDisk(&ctx, &q, &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

// On the extent store, whose pages are files a server can read itself.
class BlockIoFilesTest : public BlockIoTest {
 protected:
  std::unique_ptr<PageStore> MakePages() override {
    dir_ = absl::StrCat(testing::TempDir(), "/ukai-blockio-", getpid());
    std::filesystem::remove_all(dir_);
    auto ps = NewExtentPageStore(dir_);
    EXPECT_TRUE(ps.ok()) << ps.status();
    return ps.ok() ? *std::move(ps) : std::make_unique<MemPageStore>();
  }
  void TearDown() override {
    io_.reset();
    svc_.reset();
    reg_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Reads the deferred ranges as the server's ring would.
  static void CarryOut(wire::WireHandler::Deferred* d) {
    for (auto& r : d->ranges) {
      ssize_t n = pread(r.fd, r.buf, r.len, static_cast<off_t>(r.offset));
      ASSERT_GE(n, 0);
      r.done = static_cast<uint32_t>(n);
    }
  }
  std::string dir_;
};

// A read of pages only on disk is handed back as file reads; it answers what
// was written once they are done, refuses a page that read back wrong, and
// holds its admission until answered, so a fence for a new layout (a
// relocation's) waits for it.
TEST_F(BlockIoFilesTest, ReadsOfPagesOnDiskAreDeferredAndHoldTheirAdmission) {
  std::string data(3 * 4096, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 23);
  ASSERT_TRUE(io_->Write(W(1, 4096, data.size()), data).ok());
  ASSERT_TRUE(io_->Flush().ok());
  std::string out;
  std::unique_ptr<wire::WireHandler::Deferred> d;
  // In memory: answered at once.
  ASSERT_TRUE(io_->ReadNoWait(R(1, 4096 + 100, 5000), &out, &d).ok());
  EXPECT_EQ(out, data.substr(100, 5000));
  EXPECT_EQ(d, nullptr);
  const int resident = DropCachedPages(dir_ + "/objects");
  ASSERT_GE(resident, 0);
  if (resident != 0) GTEST_SKIP() << "the kernel kept " << resident << " pages cached";

  out.clear();
  absl::Status s = io_->ReadNoWait(R(1, 4096 + 100, 5000), &out, &d);
  ASSERT_TRUE(IsWouldBlock(s)) << s;
  ASSERT_NE(d, nullptr);
  ASSERT_EQ(d->ranges.size(), 1u);  // pages 1-2: one file read
  EXPECT_EQ(d->ranges[0].len, 2u * 4096);
  auto r = mc_.catalog.Resize("d", 12 << 20);  // a new layout version
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(
      reg_->Fence(spec_.id(), r->layout_version(), absl::Milliseconds(50))));
  CarryOut(d.get());
  ASSERT_TRUE(d->Finish(&out).ok());
  EXPECT_EQ(out, data.substr(100, 5000));
  d.reset();  // answered
  EXPECT_TRUE(reg_->Fence(spec_.id(), r->layout_version(), absl::Seconds(5)).ok());

  // Pages that changed between the checksum lookup and the file read (a
  // write landing in between) are read once more, not called bad.
  spec_.set_layout_version(r->layout_version());
  ASSERT_GE(DropCachedPages(dir_ + "/objects"), 0);
  out.clear();
  s = io_->ReadNoWait(R(1, 0, 3 * 4096), &out, &d);  // a hole, then two pages
  if (s.ok()) GTEST_SKIP() << "pages stayed cached";
  ASSERT_NE(d, nullptr);
  CarryOut(d.get());
  d->ranges[0].buf[5] ^= 1;
  ASSERT_TRUE(d->Finish(&out).ok());
  EXPECT_EQ(out, std::string(4096, '\0') + data.substr(0, 2 * 4096));
  // A page that is bad on disk is refused, never returned.
  std::string file;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_ + "/objects")) {
    if (e.is_regular_file()) file = e.path();
  }
  int fd = open(file.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "X", 1, 2 * 4096 + 9), 1);
  fsync(fd);
  close(fd);
  ASSERT_GE(DropCachedPages(dir_ + "/objects"), 0);
  out.clear();
  s = io_->ReadNoWait(R(1, 2 * 4096, 4096), &out, &d);
  if (IsWouldBlock(s)) {
    ASSERT_NE(d, nullptr);
    CarryOut(d.get());
    s = d->Finish(&out);
  }
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  // A failed file read is an error, not zeros.
  ASSERT_GE(DropCachedPages(dir_ + "/objects"), 0);
  s = io_->ReadNoWait(R(1, 4096, 4096), &out, &d);
  if (IsWouldBlock(s) && d != nullptr) {
    d->ranges[0].error = EIO;
    EXPECT_TRUE(absl::IsInternal(d->Finish(&out)));
  }
}

// A connection whose reads keep missing the cache stops trying memory first
// (each miss would start its disk read alone) and leaves its reads to the
// ring; one read in eight still tries, and once one finds its pages in
// memory the connection answers from memory again.
TEST_F(BlockIoFilesTest, AfterRepeatedMissesReadsGoToTheRingUntilAProbeHits) {
  ASSERT_TRUE(io_->Write(W(0, 0, 64 * 4096), std::string(64 * 4096, 'c')).ok());
  ASSERT_TRUE(io_->Flush().ok());
  std::string out;
  std::unique_ptr<wire::WireHandler::Deferred> d;
  // Whatever an earlier test left this thread's state in: warm it.
  int inline_answers = 0;
  for (int i = 0; i < 16 && inline_answers == 0; ++i) {
    d.reset();
    absl::Status s = io_->ReadNoWait(R(0, 0, 4096), &out, &d);
    if (s.ok()) ++inline_answers;
    if (d) CarryOut(d.get());
  }
  ASSERT_EQ(inline_answers, 1);
  if (DropCachedPages(dir_ + "/objects") != 0) GTEST_SKIP() << "pages stayed cached";
  for (uint32_t p = 1; p <= 4; ++p) {  // four misses
    d.reset();
    absl::Status miss = io_->ReadNoWait(R(0, p * 4096, 4096), &out, &d);
    // The kernel may read ahead of the ring's reads: then there is no miss.
    if (miss.ok()) GTEST_SKIP() << "page " << p << " was read ahead";
    ASSERT_TRUE(IsWouldBlock(miss));
    ASSERT_NE(d, nullptr);
    CarryOut(d.get());  // now cached
  }
  // Cached, but the connection is cold: deferred until a probe finds out.
  int deferred = 0, first_inline = -1;
  for (int i = 0; i < 8; ++i) {
    d.reset();
    out.clear();
    absl::Status s = io_->ReadNoWait(R(0, 4096, 4096), &out, &d);
    if (s.ok()) {
      EXPECT_EQ(out, std::string(4096, 'c'));
      first_inline = i;
      break;
    }
    ASSERT_TRUE(IsWouldBlock(s));
    ASSERT_NE(d, nullptr);
    ++deferred;
  }
  EXPECT_EQ(deferred, 7);
  EXPECT_EQ(first_inline, 7);
  for (int i = 0; i < 4; ++i) {  // warm again
    d.reset();
    out.clear();
    ASSERT_TRUE(io_->ReadNoWait(R(0, 4096, 4096), &out, &d).ok());
    EXPECT_EQ(d, nullptr);
  }
}

}  // namespace
}  // namespace ukai::node

namespace ukai::node {
namespace {

TEST(BlockIoAuthTest, EachRoleSendsOnlyItsMethods) {
  const wire::WirePeer node = Certified("node", "n2"), front = Certified("frontend", "hv7"),
                       admin = Certified("admin", "ops"), backup = Certified("backup", "bk");
  for (uint16_t m : {wire::kRead, wire::kWrite, wire::kFlush, wire::kCopyUp}) {
    EXPECT_TRUE(Authorize(front, m).ok()) << m;
    EXPECT_TRUE(Authorize(admin, m).ok()) << m;
  }
  EXPECT_TRUE(absl::IsPermissionDenied(Authorize(front, wire::kPull)));
  EXPECT_TRUE(Authorize(node, wire::kPull).ok());
  EXPECT_TRUE(Authorize(node, wire::kCopyUp).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(Authorize(node, wire::kWrite)));
  EXPECT_TRUE(Authorize(backup, wire::kRead).ok());
  absl::Status s = Authorize(backup, wire::kWrite);
  EXPECT_TRUE(absl::IsPermissionDenied(s));
  EXPECT_EQ(s.message(), "refused: backup bk may not send block I/O method 2 (frontend admin)");
  EXPECT_TRUE(absl::IsPermissionDenied(Authorize(admin, 99)));
  wire::WirePeer local = wire::WirePeer::Local("uid 0");
  EXPECT_TRUE(Authorize(local, wire::kPull).ok());
  EXPECT_EQ(CallerOf(front).writer, "frontend hv7");
  EXPECT_TRUE(CallerOf(backup).snapshots_only);
  EXPECT_EQ(CallerOf(node).writer, "");
}

}  // namespace
}  // namespace ukai::node
