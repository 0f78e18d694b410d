#include "node/block_io.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_format.h"
#include "meta/layout.h"

namespace ukai::node {

absl::Status CheckRange(uint64_t disk, const DiskGeometry& g, uint64_t block, uint64_t offset,
                        uint64_t len) {
  if (len == 0) return absl::InvalidArgumentError(absl::StrFormat("disk %d: empty request", disk));
  if (offset >= g.block_size || len > g.block_size - offset) {
    return absl::InvalidArgumentError(
        absl::StrFormat("disk %d block %d: range [%d, +%d) crosses the %d-byte block", disk, block,
                        offset, len, g.block_size));
  }
  uint64_t start = block * g.block_size + offset;
  if (block >= (g.size + g.block_size - 1) / g.block_size || start + len > g.size) {
    return absl::OutOfRangeError(
        absl::StrFormat("disk %d block %d: range [%d, +%d) is past the disk's end (%d bytes)", disk,
                        block, start, len, g.size));
  }
  return absl::OkStatus();
}

absl::Status CheckGeneration(uint64_t generation) {
  if (generation & kStoreGenerations) {
    return absl::InvalidArgumentError(absl::StrFormat("generation %d is out of range", generation));
  }
  return absl::OkStatus();
}

absl::Status CheckObject(uint64_t disk, const DiskGeometry& g, uint64_t block,
                         uint64_t generation) {
  RETURN_IF_ERROR(CheckRange(disk, g, block, 0, 1));
  return CheckGeneration(generation);
}

uint32_t PagesInBlock(const DiskGeometry& g, uint64_t block) {
  const uint64_t len = std::min<uint64_t>(g.block_size, g.size - block * g.block_size);
  return static_cast<uint32_t>((len + meta::kPageSize - 1) / meta::kPageSize);
}

namespace {
// The roles that may send each method; kHello is the transport's own.
absl::string_view RolesFor(uint16_t method) {
  switch (method) {
    case wire::kRead:
      return "frontend admin backup";
    case wire::kWrite:
      return "frontend admin";
    case wire::kFlush:
    case wire::kCopyUp:
      return "frontend admin node";
    case wire::kPull:
      return "node";
    default:
      return "";
  }
}
}  // namespace

absl::Status Authorize(const wire::WirePeer& peer, uint16_t method) {
  if (peer.kind() != wire::WirePeer::Kind::kCertified) return absl::OkStatus();
  const absl::string_view allowed = RolesFor(method);
  for (absl::string_view role : absl::StrSplit(allowed, ' ', absl::SkipEmpty())) {
    if (role == peer.role()) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrFormat("refused: %s may not send block I/O method %d (%s)", peer.ToString(), method,
                      allowed.empty() ? "nobody" : allowed));
}

Caller CallerOf(const wire::WirePeer& peer) {
  Caller who;
  if (peer.kind() != wire::WirePeer::Kind::kCertified) return who;
  if (peer.role() == "frontend" || peer.role() == "admin") who.writer = peer.ToString();
  who.snapshots_only = peer.role() == "backup";
  return who;
}

absl::Status BlockIo::Write(const pb::WriteRequest& req, absl::string_view data,
                            const Caller& who) {
  auto a = disks_->AdmitIo(req.hdr(), /*write=*/true, who);
  if (!a.ok()) return a.status();
  absl::Status s =
      CheckRange(req.hdr().disk_id(), a->geometry(), req.block(), req.offset(), data.size());
  if (s.ok()) s = CheckGeneration(req.generation());
  if (!s.ok()) return s;
  return store_->Write({req.hdr().disk_id(), req.block(), req.generation()}, req.offset(), data,
                       req.track());
}

absl::Status BlockIo::CopyUp(const pb::CopyUpRequest& req, const Caller& who) {
  auto a = disks_->AdmitIo(req.hdr(), /*write=*/true, who);
  if (!a.ok()) return a.status();
  const uint64_t disk = req.hdr().disk_id();
  RETURN_IF_ERROR(CheckObject(disk, a->geometry(), req.block(), req.generation()));
  RETURN_IF_ERROR(CheckGeneration(req.from_generation()));
  if (!req.empty() && req.from_generation() >= req.generation()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "disk %d block %d: copy-on-write from generation %d into older generation %d", disk,
        req.block(), req.from_generation(), req.generation()));
  }
  const ObjectId src{disk, req.block(), req.from_generation()};
  const ObjectId dst{disk, req.block(), req.generation()};
  RETURN_IF_ERROR(store_->CopyObject(req.empty() ? nullptr : &src, dst, a->geometry().block_size));
  return store_->Sync();
}

absl::StatusOr<Admission> BlockIo::AdmitRead(const pb::ReadRequest& req, const Caller& who) {
  auto a = disks_->AdmitIo(req.hdr(), /*write=*/false, who);
  if (!a.ok()) return a.status();
  if (who.snapshots_only && req.generation() >= a->geometry().generation) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "refused: disk %d block %d generation %d is not in a snapshot (a backup identity reads "
        "snapshots only)",
        req.hdr().disk_id(), req.block(), req.generation()));
  }
  RETURN_IF_ERROR(
      CheckRange(req.hdr().disk_id(), a->geometry(), req.block(), req.offset(), req.length()));
  RETURN_IF_ERROR(CheckGeneration(req.generation()));
  return a;
}

namespace {
ObjectId ObjectOf(const pb::ReadRequest& req) {
  return {req.hdr().disk_id(), req.block(), req.generation()};
}

absl::Status Logged(absl::Status s) {
  if (absl::IsDataLoss(s)) LOG_WARN("%s", s.ToString());  // the client reads another replica
  return s;
}

// FinishRead of a plan whose runs were read. A page that fails its checksum
// is read once more the ordinary way (checksums and pages together) before
// it is called bad: a write may have landed between the plan's lookup and
// its file read. Without `may_block` that read may say WouldBlock() (a
// worker redoes it).
absl::Status Complete(BlockStore* store, const ObjectId& obj, uint32_t offset, uint32_t length,
                      const PagePlan& plan, std::string* out, bool may_block) {
  const size_t base = out->size();
  absl::Status s = store->FinishRead(offset, length, plan, out);
  if (!absl::IsDataLoss(s)) return s;
  out->resize(base);
  return Logged(store->Read(obj, offset, length, out, may_block));
}

constexpr uint32_t kColdAfterMisses = 4, kProbeEvery = 8;

// A read whose pages are on disk, left to the server's io_uring. It keeps its
// admission until answered, so a fence waits for it like any other read.
class RingRead final : public wire::WireHandler::Deferred {
 public:
  RingRead(Admission a, BlockStore* store, const pb::ReadRequest& req, PagePlan plan)
      : admission_(std::move(a)),
        store_(store),
        obj_(ObjectOf(req)),
        offset_(req.offset()),
        length_(req.length()),
        plan_(std::move(plan)) {
    for (const PagePlan::Run& r : plan_.runs) {
      ranges.push_back(
          {r.fd, r.offset, plan_.data.data() + r.at, static_cast<uint32_t>(r.n * meta::kPageSize)});
    }
  }
  absl::Status Finish(std::string* reply_data) override {
    for (const Range& r : ranges) {
      if (r.error != 0) return absl::InternalError(absl::StrFormat("read: %s", strerror(r.error)));
    }  // a short read left zeros: the checksum tells
    // A re-read is rare, so it may wait here on the ring's thread.
    return Complete(store_, obj_, offset_, length_, plan_, reply_data, /*may_block=*/true);
  }

 private:
  Admission admission_;
  BlockStore* store_;
  ObjectId obj_;
  uint32_t offset_, length_;
  PagePlan plan_;
};
}  // namespace

absl::Status BlockIo::Read(const pb::ReadRequest& req, std::string* out, bool may_block,
                           const Caller& who) {
  auto a = AdmitRead(req, who);
  if (!a.ok()) return a.status();
  return Logged(store_->Read(ObjectOf(req), req.offset(), req.length(), out, may_block));
}

absl::Status BlockIo::ReadNoWait(const pb::ReadRequest& req, std::string* out,
                                 std::unique_ptr<Deferred>* deferred, const Caller& who) {
  auto a = AdmitRead(req, who);
  if (!a.ok()) return a.status();
  if (req.length() > kMaxRingRead)
    return Logged(store_->Read(ObjectOf(req), req.offset(), req.length(), out, false));
  PagePlan plan;
  absl::Status planned = store_->PlanRead(ObjectOf(req), req.offset(), req.length(), &plan);
  // The object dropped after its index was read: Read on a worker sorts it out.
  if (absl::IsNotFound(planned)) return WouldBlock();
  RETURN_IF_ERROR(planned);
  if (plan.runs.empty()) return store_->FinishRead(req.offset(), req.length(), plan, out);  // holes
  // Most reads of a connection missing the cache lately: leave the reads to
  // the ring without trying (a miss costs a syscall that starts the disk
  // read on its own, where the ring starts a batch of them at once), but
  // still try one in kProbeEvery to notice the data turning warm. Per
  // connection: each has its own thread.
  thread_local uint32_t misses = 0, skipped = 0;
  const bool cold = misses >= kColdAfterMisses;
  if (!cold || ++skipped % kProbeEvery == 0) {
    absl::Status s = ReadPlanned(&plan, /*nowait=*/true);
    if (s.ok()) {
      misses = 0;
      return Complete(store_, ObjectOf(req), req.offset(), req.length(), plan, out,
                      /*may_block=*/false);
    }
    if (!IsWouldBlock(s)) return s;
    if (++misses == kColdAfterMisses) skipped = 0;
  }
  *deferred = std::make_unique<RingRead>(*std::move(a), store_, req, std::move(plan));
  return WouldBlock();
}

absl::Status BlockIo::HandleNoWait(const wire::WirePeer& peer, uint16_t method,
                                   absl::string_view meta, absl::string_view data,
                                   std::string* reply_data, std::unique_ptr<Deferred>* deferred) {
  if (method != wire::kRead || deferred == nullptr) {
    return Handle(peer, method, meta, data, reply_data, /*may_block=*/false);
  }
  pb::ReadRequest req;
  if (!req.ParseFromArray(meta.data(), static_cast<int>(meta.size()))) {
    return Handle(peer, method, meta, data, reply_data, /*may_block=*/false);  // says what is wrong
  }
  RETURN_IF_ERROR(Authorize(peer, method));
  return ReadNoWait(req, reply_data, deferred, CallerOf(peer));
}

absl::Status BlockIo::Pull(const pb::PullRequest& req, std::string* out) {
  auto a = disks_->AdmitIo(req.hdr(), /*write=*/false);
  if (!a.ok()) return a.status();
  const DiskGeometry& g = a->geometry();
  const uint64_t disk = req.hdr().disk_id();
  RETURN_IF_ERROR(CheckObject(disk, g, req.block(), req.generation()));
  const uint32_t pages = PagesInBlock(g, req.block());
  if (req.pages() == 0 || req.pages() > kMaxPullPages ||
      uint64_t{req.first_page()} + req.pages() > pages) {
    return absl::OutOfRangeError(
        absl::StrFormat("disk %d block %d: pull of pages [%d, +%d) outside the block's %d pages "
                        "(at most %d at once)",
                        disk, req.block(), req.first_page(), req.pages(), pages, kMaxPullPages));
  }
  std::vector<bool> present;
  RETURN_IF_ERROR(store_->ReadPages({disk, req.block(), req.generation()}, req.first_page(),
                                    req.pages(), &present, out));
  for (bool p : present) out->push_back(p ? 1 : 0);
  return absl::OkStatus();
}

absl::Status BlockIo::Handle(const wire::WirePeer& peer, uint16_t method, absl::string_view meta,
                             absl::string_view data, std::string* reply_data, bool may_block) {
  RETURN_IF_ERROR(Authorize(peer, method));
  const Caller who = CallerOf(peer);
  switch (method) {
    case wire::kWrite: {
      pb::WriteRequest req;
      if (!req.ParseFromArray(meta.data(), static_cast<int>(meta.size()))) break;
      return Write(req, data, who);
    }
    case wire::kRead: {
      pb::ReadRequest req;
      if (!req.ParseFromArray(meta.data(), static_cast<int>(meta.size()))) break;
      return Read(req, reply_data, may_block, who);
    }
    case wire::kFlush:
      return Flush();
    case wire::kCopyUp: {
      pb::CopyUpRequest req;
      if (!req.ParseFromArray(meta.data(), static_cast<int>(meta.size()))) break;
      return CopyUp(req, who);
    }
    case wire::kPull: {
      pb::PullRequest req;
      if (!req.ParseFromArray(meta.data(), static_cast<int>(meta.size()))) break;
      return Pull(req, reply_data);
    }
    default:
      return absl::UnimplementedError(absl::StrFormat("unknown block I/O method %d", method));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("block I/O method %d: undecodable request", method));
}

bool BlockIo::Slow(uint16_t method) const {
  return method == wire::kFlush || method == wire::kCopyUp;
}

}  // namespace ukai::node
