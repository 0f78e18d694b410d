#include "node/block_io.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_format.h"
#include "meta/layout.h"

namespace ukai::node {

absl::Status CheckRange(uint64_t disk, const DiskGeometry& g, uint64_t block, uint64_t offset,
                        uint64_t len) {
  if (len == 0) return absl::InvalidArgumentError(absl::StrFormat("disk %d: empty request", disk));
  if (offset >= g.block_size || len > g.block_size - offset) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "disk %d block %d: range [%d, +%d) crosses the %d-byte block", disk, block, offset, len,
        g.block_size));
  }
  uint64_t start = block * g.block_size + offset;
  if (block >= (g.size + g.block_size - 1) / g.block_size || start + len > g.size) {
    return absl::OutOfRangeError(absl::StrFormat(
        "disk %d block %d: range [%d, +%d) is past the disk's end (%d bytes)", disk, block, start,
        len, g.size));
  }
  return absl::OkStatus();
}

absl::Status CheckGeneration(uint64_t generation) {
  if (generation & kMarkGeneration) {
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

absl::Status BlockIo::Write(const pb::WriteRequest& req, absl::string_view data) {
  auto a = disks_->AdmitIo(req.hdr(), /*write=*/true);
  if (!a.ok()) return a.status();
  absl::Status s =
      CheckRange(req.hdr().disk_id(), a->geometry(), req.block(), req.offset(), data.size());
  if (s.ok()) s = CheckGeneration(req.generation());
  if (!s.ok()) return s;
  return store_->Write({req.hdr().disk_id(), req.block(), req.generation()}, req.offset(), data,
                       req.track());
}

absl::Status BlockIo::Read(const pb::ReadRequest& req, std::string* out, bool may_block) {
  auto a = disks_->AdmitIo(req.hdr(), /*write=*/false);
  if (!a.ok()) return a.status();
  absl::Status s =
      CheckRange(req.hdr().disk_id(), a->geometry(), req.block(), req.offset(), req.length());
  if (s.ok()) s = CheckGeneration(req.generation());
  if (s.ok()) {
    s = store_->Read({req.hdr().disk_id(), req.block(), req.generation()}, req.offset(),
                     req.length(), out, may_block);
  }
  if (absl::IsDataLoss(s)) LOG_WARN("%s", s.ToString());  // the client reads another replica
  return s;
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
    return absl::OutOfRangeError(absl::StrFormat(
        "disk %d block %d: pull of pages [%d, +%d) outside the block's %d pages (at most %d at once)",
        disk, req.block(), req.first_page(), req.pages(), pages, kMaxPullPages));
  }
  std::vector<bool> present;
  RETURN_IF_ERROR(store_->ReadPages({disk, req.block(), req.generation()}, req.first_page(),
                                    req.pages(), &present, out));
  for (bool p : present) out->push_back(p ? 1 : 0);
  return absl::OkStatus();
}

absl::Status BlockIo::Handle(uint16_t method, absl::string_view meta, absl::string_view data,
                             std::string* reply_data, bool may_block) {
  switch (method) {
    case wire::kWrite: {
      pb::WriteRequest req;
      if (!req.ParseFromArray(meta.data(), static_cast<int>(meta.size()))) break;
      return Write(req, data);
    }
    case wire::kRead: {
      pb::ReadRequest req;
      if (!req.ParseFromArray(meta.data(), static_cast<int>(meta.size()))) break;
      return Read(req, reply_data, may_block);
    }
    case wire::kFlush:
      return Flush();
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

bool BlockIo::Slow(uint16_t method) const { return method == wire::kFlush; }

}  // namespace ukai::node
