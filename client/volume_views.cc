// VolumeImpl, what a volume reads through: snapshot views, the parent of a
// clone, and the block lists the backup and export walk.
#include <cstring>
#include <set>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/volume_impl.h"
#include "client/volume_rules.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/placement.h"

namespace ukai::client {

meta::BlockView VolumeImpl::ViewOf(const BlockRef& ref) const {
  absl::MutexLock l(&mu_);
  const bool clone = spec_.has_parent();
  return ref.allocated() ? meta::ViewOf(ref.ptr(), view_, clone) : meta::Unallocated(clone);
}

absl::StatusOr<std::shared_ptr<VolumeImpl>> VolumeImpl::Parent() {
  pb::ParentRef ref;
  {
    absl::MutexLock l(&mu_);
    if (parent_) return parent_;
    if (!spec_.has_parent()) {
      return absl::FailedPreconditionError(
          absl::StrFormat("disk '%s' has no parent (flattened meanwhile)", spec_.name()));
    }
    ref = spec_.parent();
  }
  // A view of the parent's snapshot, watched like any volume; it cannot be
  // deleted while this clone depends on it.
  auto p = std::make_shared<VolumeImpl>(catalog_, pool_, opts_, ref.disk_id(), nullptr, async_,
                                        ref.snapshot());
  absl::Status s = p->Init();
  if (absl::IsNotFound(s)) {
    return absl::DataLossError(
        absl::StrFormat("disk %d: its parent %s@%s is gone", id_, ref.disk_name(), ref.snapshot()));
  }
  RETURN_IF_ERROR(s);
  absl::MutexLock l(&mu_);
  if (!parent_) parent_ = std::move(p);
  return parent_;
}

void VolumeImpl::ViewNow(pb::DiskSpec* spec, uint64_t* view, uint64_t* size) const {
  absl::MutexLock l(&mu_);
  *spec = spec_;
  *view = view_;
  *size = snapshot_.empty() ? spec_.size() : view_size_;
}

absl::StatusOr<std::vector<uint64_t>> VolumeImpl::DataBlocks() {
  pb::DiskSpec spec;
  uint64_t view, size;
  ViewNow(&spec, &view, &size);
  const uint64_t nblocks = (size + spec.block_size() - 1) / spec.block_size();
  std::vector<uint64_t> from_parent;  // the parent's, where this view reads through
  if (spec.has_parent()) {
    ASSIGN_OR_RETURN(auto parent, Parent());
    ASSIGN_OR_RETURN(from_parent, parent->DataBlocks());
  }
  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(id_));
  std::vector<uint64_t> out;
  auto inherited = [&](uint64_t b) {
    return std::binary_search(from_parent.begin(), from_parent.end(), b);
  };
  for (uint64_t b = 0; b < nblocks; ++b) {
    auto it = chunks.find(b / meta::kChunkBlocks);
    if (it == chunks.end()) {
      if (!from_parent.empty() && inherited(b)) out.push_back(b);
      continue;
    }
    const auto& ptr = it->second.blocks(static_cast<int>(b % meta::kChunkBlocks));
    const meta::BlockView v = meta::ViewOf(ptr, view, spec.has_parent());
    if (v.kind == meta::BlockView::kObject ||
        (v.kind == meta::BlockView::kParent && inherited(b))) {
      out.push_back(b);
    }
  }
  return out;
}

absl::StatusOr<std::vector<uint64_t>> VolumeImpl::ChangedBlocks(const std::string& since) {
  pb::DiskSpec spec;
  uint64_t view, size;
  ViewNow(&spec, &view, &size);
  const pb::Snapshot* base = meta::FindSnapshot(spec, since);
  if (base == nullptr) {
    return absl::NotFoundError(
        absl::StrFormat("disk '%s' has no snapshot '%s'", spec.name(), since));
  }
  if (base->generation() >= view) {
    return absl::InvalidArgumentError(
        absl::StrFormat("snapshot %s@%s is not older than %s", spec.name(), since,
                        snapshot_.empty() ? spec.name() : spec.name() + "@" + snapshot_));
  }
  const uint64_t base_blocks = (base->size() + spec.block_size() - 1) / spec.block_size();
  const uint64_t nblocks = (size + spec.block_size() - 1) / spec.block_size();
  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(id_));
  const bool clone = spec.has_parent();
  std::set<uint64_t> out;
  // Grown since: whatever holds data there now.
  ASSIGN_OR_RETURN(auto data, DataBlocks());
  for (uint64_t b : data) {
    if (b >= base_blocks) out.insert(b);
  }
  // A block whose state differs between the two views; an unallocated chunk
  // reads the same in both.
  for (const auto& [c, chunk] : chunks) {
    for (uint64_t b = c * meta::kChunkBlocks;
         b < std::min(nblocks, base_blocks) && b < (c + 1) * meta::kChunkBlocks; ++b) {
      const auto& ptr = chunk.blocks(static_cast<int>(b % meta::kChunkBlocks));
      const meta::BlockView now = meta::ViewOf(ptr, view, clone);
      const meta::BlockView then = meta::ViewOf(ptr, base->generation(), clone);
      const bool same = now.kind == then.kind &&
                        (now.kind != meta::BlockView::kObject || now.generation == then.generation);
      if (!same) out.insert(b);
    }
  }
  return std::vector<uint64_t>(out.begin(), out.end());
}

absl::Status VolumeImpl::ReadParent(uint64_t block, uint32_t off, uint32_t len, char* out) {
  ASSIGN_OR_RETURN(auto parent, Parent());
  uint32_t bs;
  {
    absl::MutexLock l(&mu_);
    bs = spec_.block_size();
  }
  const uint64_t pos = block * bs + off;
  const uint64_t end = parent->size();  // the snapshot's size; past it: zeros
  const size_t n = pos >= end ? 0 : static_cast<size_t>(std::min<uint64_t>(len, end - pos));
  if (n > 0) RETURN_IF_ERROR(parent->Read(pos, n, out));
  memset(out + n, 0, len - n);
  return absl::OkStatus();
}

}  // namespace ukai::client
