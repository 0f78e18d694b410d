#include "client/volume_impl.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_client.h"
#include "common/wire_format.h"
#include "meta/placement.h"

namespace ukai::client {
namespace {

constexpr int kMaxAttempts = 8;
// Writes to a replica being filled by a copy cover whole sectors (the node
// tracks them per 512-byte sector; node/block_store.h).
constexpr uint32_t kSectorSize = 512;
// WriteAsync copies the data of writes up to this size and answers them from
// the transport's thread; larger ones run inline.
constexpr size_t kMaxAsyncWrite = 128 << 10;

bool IsStaleLayout(const absl::Status& s) { return absl::IsFailedPrecondition(s); }
bool IsFenced(const absl::Status& s) { return absl::IsPermissionDenied(s); }

absl::Time Deadline(int ms) { return absl::Now() + absl::Milliseconds(ms); }

// Pauses between tries of I/O the failure policy holds: 20 ms, doubling to
// 1 s, until the hold time is up.
// The hold time counts from when the I/O began, its first try included.
class Hold {
 public:
  Hold(absl::Time began, uint32_t ms) : until_(began + absl::Milliseconds(ms)) {}
  // A try's deadline: the RPC deadline, cut at the end of the hold.
  absl::Time Deadline(int rpc_ms) const {
    const absl::Time now = absl::Now();
    return std::min(now + absl::Milliseconds(rpc_ms),
                    std::max(until_, now + absl::Milliseconds(100)));
  }
  // Sleeps before the next try (the last one at the end of the hold time);
  // false, at once, when the hold time is up.
  bool Wait() {
    const absl::Time now = absl::Now();
    if (now >= until_) return false;
    absl::SleepFor(std::min(pause_, until_ - now));
    pause_ = std::min(pause_ * 2, absl::Seconds(1));
    return true;
  }

 private:
  const absl::Time until_;
  absl::Duration pause_ = absl::Milliseconds(20);
};



// Calls `fn(segment_block, offset_in_block, length, position_in_buffer)` for
// each block-sized piece of [offset, offset+len).
template <typename Fn>
absl::Status ForEachSegment(uint64_t offset, size_t len, uint32_t block_size, Fn fn) {
  size_t done = 0;
  while (done < len) {
    uint64_t pos = offset + done;
    uint64_t block = pos / block_size;
    uint32_t off = static_cast<uint32_t>(pos % block_size);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(len - done, block_size - off));
    RETURN_IF_ERROR(fn(block, off, n, done));
    done += n;
  }
  return absl::OkStatus();
}

}  // namespace

VolumeImpl::VolumeImpl(meta::Catalog* catalog, NodePool* pool, const ClusterOptions* opts,
                       uint64_t id, std::function<void()> on_change, OpCounter* async_ops,
                       std::string snapshot)
    : catalog_(catalog),
      pool_(pool),
      opts_(opts),
      id_(id),
      on_change_(std::move(on_change)),
      async_ops_(async_ops),
      snapshot_(std::move(snapshot)) {}

VolumeImpl::~VolumeImpl() { guard_.Kill(); }

absl::Status VolumeImpl::Init() { return RefreshLayout(/*arm_watch=*/true); }

DiskAttr VolumeImpl::attr() const {
  absl::MutexLock l(&mu_);
  if (snapshot_.empty()) {
    return DiskAttr{spec_.id(), spec_.name(), spec_.size(), spec_.block_size(), spec_.created_ms()};
  }
  const pb::Snapshot* s = meta::FindSnapshot(spec_, snapshot_);
  return DiskAttr{spec_.id(), spec_.name() + "@" + snapshot_, view_size_, spec_.block_size(),
                  s != nullptr ? s->created_ms() : spec_.created_ms(), true, view_};
}

absl::Status VolumeImpl::RefreshLayout(bool arm_watch) {
  meta::WatchFn watch;
  if (arm_watch) {
    watch = guard_.Wrap([this] {
      absl::Status s = RefreshLayout(/*arm_watch=*/true);
      if (!s.ok() && !absl::IsNotFound(s)) LOG_WARN("disk %d: refresh: %s", id_, s.ToString());
      if (on_change_) on_change_();
    });
  }
  auto v = catalog_->GetSpec(id_, std::move(watch));
  absl::MutexLock l(&mu_);
  if (absl::IsNotFound(v.status()) ||
      (v.ok() && v->spec.state() != pb::DiskSpec::READY)) {
    gone_ = true;
    return absl::NotFoundError(absl::StrFormat("disk %d was deleted", id_));
  }
  RETURN_IF_ERROR(v.status());
  if (v->spec.layout_version() >= spec_.layout_version()) {
    if (v->spec.layout_version() != spec_.layout_version()) chunks_.clear();
    // A clone flattened meanwhile reads its parent no more.
    if (!v->spec.has_parent() || (spec_.has_parent() &&
                                  v->spec.parent().disk_id() != spec_.parent().disk_id())) {
      parent_.reset();
    }
    spec_ = v->spec;
  }
  if (!snapshot_.empty()) {
    const pb::Snapshot* s = meta::FindSnapshot(spec_, snapshot_);
    if (s == nullptr) {
      gone_ = true;
      return absl::NotFoundError(
          absl::StrFormat("disk '%s' has no snapshot '%s'", spec_.name(), snapshot_));
    }
    view_ = s->generation();
    view_size_ = s->size();
  }
  return absl::OkStatus();
}

uint64_t VolumeImpl::size() const {
  absl::MutexLock l(&mu_);
  return snapshot_.empty() ? spec_.size() : view_size_;
}

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
  auto p = std::make_shared<VolumeImpl>(catalog_, pool_, opts_, ref.disk_id(), nullptr, async_ops_,
                                        ref.snapshot());
  absl::Status s = p->Init();
  if (absl::IsNotFound(s)) {
    return absl::DataLossError(absl::StrFormat("disk %d: its parent %s@%s is gone", id_,
                                               ref.disk_name(), ref.snapshot()));
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
    if (v.kind == meta::BlockView::kObject || (v.kind == meta::BlockView::kParent && inherited(b))) {
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
    return absl::NotFoundError(absl::StrFormat("disk '%s' has no snapshot '%s'", spec.name(), since));
  }
  if (base->generation() >= view) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "snapshot %s@%s is not older than %s", spec.name(), since,
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
    for (uint64_t b = c * meta::kChunkBlocks; b < std::min(nblocks, base_blocks) &&
                                              b < (c + 1) * meta::kChunkBlocks; ++b) {
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

absl::StatusOr<uint32_t> VolumeImpl::CheckRange(uint64_t offset, size_t len) const {
  absl::MutexLock l(&mu_);
  if (gone_) {
    return absl::NotFoundError(snapshot_.empty()
                                   ? absl::StrFormat("disk '%s' was deleted", spec_.name())
                                   : absl::StrFormat("snapshot %s@%s was deleted", spec_.name(),
                                                     snapshot_));
  }
  const uint64_t size = snapshot_.empty() ? spec_.size() : view_size_;
  if (offset > size || len > size - offset) {
    return absl::OutOfRangeError(absl::StrFormat("disk '%s': [%d, +%d) is past its end (%d)",
                                                 spec_.name(), offset, len, size));
  }
  return spec_.block_size();
}

pb::IoHeader VolumeImpl::Header(uint64_t layout_version, uint64_t epoch) const {
  pb::IoHeader h;
  h.set_disk_id(id_);
  h.set_layout_version(layout_version);
  h.set_epoch(epoch);
  return h;
}

absl::StatusOr<VolumeImpl::BlockRef> VolumeImpl::GetBlock(uint64_t block, bool allocate) {
  const uint64_t c = block / meta::kChunkBlocks;
  const uint32_t i = block % meta::kChunkBlocks;
  uint64_t version;
  pb::DiskSpec spec;
  {
    absl::MutexLock l(&mu_);
    version = spec_.layout_version();
    auto it = chunks_.find(c);
    if (it != chunks_.end() && (it->second || !allocate)) return BlockRef{version, it->second, i};
    spec = spec_;
  }
  // The chunk is read after the spec whose version we send: it is at least
  // that new, so a node that knows a newer layout rejects us, never the reverse.
  ASSIGN_OR_RETURN(auto chunk, catalog_->ReadChunk(id_, c));
  if (!chunk && allocate) {
    ASSIGN_OR_RETURN(auto replicas,
                     meta::ChooseReplicas(spec.placement(), pool_->LiveNodes(), pool_->my_site(),
                                          id_ * 1000003 + c));
    if (replicas.size() < spec.placement().replicas()) {
      LOG_WARN("disk %s chunk %d: only %d of %d replicas placeable (nodes down)", spec.name(), c,
               replicas.size(), spec.placement().replicas());
    }
    ASSIGN_OR_RETURN(auto created, catalog_->AllocateChunk(spec, c, replicas));
    chunk = std::move(created);
  }
  std::shared_ptr<const pb::BlockChunk> shared;
  if (chunk) shared = std::make_shared<const pb::BlockChunk>(std::move(chunk->chunk));
  absl::MutexLock l(&mu_);
  // "Not allocated" is cached only where nothing else can allocate it: this
  // host writes the disk, or this is a snapshot's view (a chunk allocated
  // later begins after the snapshot: the view reads it as unallocated anyway).
  if (spec_.layout_version() == version && (shared || writer_ || !snapshot_.empty())) {
    chunks_[c] = shared;
  }
  return BlockRef{version, std::move(shared), i};
}

absl::StatusOr<uint64_t> VolumeImpl::WriterEpoch() {
  absl::MutexLock l(&writer_mu_);
  if (fenced_) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "disk %d: another host took over writing; reopen the disk to write again", id_));
  }
  if (epoch_ == 0) {
    ASSIGN_OR_RETURN(epoch_, catalog_->TakeWriterEpoch(id_, opts_->host, opts_->site));
    absl::MutexLock m(&mu_);
    writer_ = true;
    LOG_DEBUG("disk %d: writer epoch %d taken by %s", id_, epoch_, opts_->host);
  }
  return epoch_;
}

void VolumeImpl::ReleaseWriter() {
  absl::MutexLock l(&writer_mu_);
  epoch_ = 0;
  fenced_ = false;
  absl::MutexLock m(&mu_);
  writer_ = false;
  // Negative entries were trusted only because we were the writer.
  for (auto it = chunks_.begin(); it != chunks_.end();) {
    it = it->second ? std::next(it) : chunks_.erase(it);
  }
}

absl::Status VolumeImpl::Read(uint64_t offset, size_t len, char* out) {
  ASSIGN_OR_RETURN(const uint32_t bs, CheckRange(offset, len));
  return ForEachSegment(offset, len, bs, [&](uint64_t block, uint32_t off, uint32_t n, size_t at) {
    return ReadSegment(block, off, n, out + at);
  });
}

std::vector<std::string> VolumeImpl::CleanReplicas(const BlockRef& ref) {
  std::vector<std::string> clean;
  for (const auto& r : ref.ptr().replicas()) {
    if (r.state() == pb::CLEAN) clean.push_back(r.node());
  }
  return pool_->ReadOrder(std::move(clean));
}

VolumeImpl::IoPolicy VolumeImpl::Policy() const {
  absl::MutexLock l(&mu_);
  return {spec_.failure(), spec_.placement().replicas()};
}

uint32_t VolumeImpl::Needed(const IoPolicy& p, const BlockRef& ref) const {
  return meta::ReplicasNeeded(p.failure, p.wanted,
                              static_cast<uint32_t>(ref.ptr().replicas_size()));
}

void VolumeImpl::PrepareRead(const BlockRef& ref, uint64_t block, uint64_t generation,
                             uint32_t off, uint32_t len, char* out, wire::WireCall* call) const {
  pb::ReadRequest req;
  *req.mutable_hdr() = Header(ref.layout_version, 0);
  req.set_block(block);
  req.set_generation(generation);
  req.set_offset(off);
  req.set_length(len);
  call->method = wire::kRead;
  call->meta = req.SerializeAsString();
  call->out = out;  // a failed replica's partial bytes are overwritten by the next
  call->out_cap = len;
}

void VolumeImpl::ReadAsync(uint64_t offset, size_t len, char* out, Done done) {
  auto bs = CheckRange(offset, len);
  if (!bs.ok()) return done(bs.status());
  const uint64_t block = offset / *bs;
  const uint32_t off = static_cast<uint32_t>(offset % *bs);
  if (len == 0 || off + len > *bs) return done(Read(offset, len, out));  // rare: inline
  auto ref = GetBlock(block, /*allocate=*/false);
  if (!ref.ok()) return done(ref.status());
  const meta::BlockView view = ViewOf(*ref);
  if (view.kind == meta::BlockView::kZeros) {
    memset(out, 0, len);
    return done(absl::OkStatus());
  }
  if (view.kind == meta::BlockView::kParent) {  // a clone's: the parent's view answers
    auto parent = Parent();
    if (!parent.ok()) return done(parent.status());
    const uint64_t pos = offset;  // same block size: the same offset in the parent
    if (pos + len <= (*parent)->size()) return (*parent)->ReadAsync(pos, len, out, std::move(done));
    return done(ReadParent(block, off, static_cast<uint32_t>(len), out));  // its end: rare
  }
  std::vector<std::string> clean = CleanReplicas(*ref);
  if (clean.empty()) return done(Read(offset, len, out));  // says why
  auto io = pool_->Io(clean.front());
  if (!io.ok()) return done(Read(offset, len, out));

  // The fast path: one call to the nearest clean replica, answered from the
  // transport's reader thread. Anything but a full reply (a dead node, a
  // stale layout, a bad page) goes to ReadSegment, which knows every
  // fallback, on a thread of its own: the reader thread must never block.
  struct Op {
    std::shared_ptr<wire::WireClient> io;
    wire::WireCall call;
    Done done;
    // The call's completion and the starter each drop one; the last runs
    // `finish`. The reply may come before Start returns, and Start's send
    // still has the request's buffers in hand until then.
    std::atomic<int> holds{2};
  };
  auto* op = new Op{*io, {}, std::move(done)};
  PrepareRead(*ref, block, view.generation, off, static_cast<uint32_t>(len), out, &op->call);
  op->call.deadline = Deadline(opts_->rpc_timeout_ms);
  // `done` may hold the last reference to this volume: it is destroyed
  // before the operation counts as finished, and nothing of `this` is
  // touched after it.
  OpCounter* ops = async_ops_;
  ops->Add();
  auto finish = [this, op, ops, block, off, len, out] {
    std::unique_ptr<Op> own(op);
    if (own->call.status.ok() && own->call.out_len == len) {
      own->done(absl::OkStatus());
      own.reset();
      ops->Done();
      return;
    }
    LOG_DEBUG("disk %d block %d: %s; retrying off the fast path", id_, block,
              own->call.status.ToString());
    std::thread([this, ops, block, off, len, out, done = std::move(own->done)]() mutable {
      done(ReadSegment(block, off, static_cast<uint32_t>(len), out));
      done = nullptr;
      ops->Done();
    }).detach();
  };
  op->call.on_done = [op, finish] {
    if (--op->holds == 0) finish();
  };
  op->io->Start(&op->call, nullptr);
  if (--op->holds == 0) finish();
}

absl::Status VolumeImpl::ReadSegment(uint64_t block, uint32_t off, uint32_t len, char* out) {
  const absl::Time began = absl::Now();
  absl::Status s = ReadSegmentOnce(block, off, len, out);
  if (absl::IsAborted(s)) {  // the layout kept moving under it: pause and try again
    Hold hold(began, meta::HoldMs(Policy().failure));
    while (absl::IsAborted(s) && hold.Wait()) s = ReadSegmentOnce(block, off, len, out);
    if (absl::IsAborted(s)) return absl::UnavailableError(std::string(s.message()));
  }
  if (!absl::IsUnavailable(s)) return s;
  const IoPolicy p = Policy();
  if (p.failure.on_replica_failure() != pb::FailurePolicy::WAIT) return s;
  LOG_WARN("%s; holding the read up to %d ms (policy: wait)", s.ToString(), meta::HoldMs(p.failure));
  Hold hold(began, meta::HoldMs(p.failure));
  while (absl::IsUnavailable(s) && hold.Wait()) {
    (void)RefreshLayout(/*arm_watch=*/false);  // ZooKeeper away: the cached layout
    s = ReadSegmentOnce(block, off, len, out);
  }
  return s;
}

absl::Status VolumeImpl::ReadSegmentOnce(uint64_t block, uint32_t off, uint32_t len, char* out) {
  absl::Status last = absl::UnavailableError("no attempt");
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    ASSIGN_OR_RETURN(BlockRef ref, GetBlock(block, /*allocate=*/false));
    const meta::BlockView view = ViewOf(ref);
    if (view.kind == meta::BlockView::kZeros) {
      memset(out, 0, len);
      return absl::OkStatus();
    }
    if (view.kind == meta::BlockView::kParent) return ReadParent(block, off, len, out);
    std::vector<std::string> clean = CleanReplicas(ref);
    if (clean.empty()) {
      return absl::UnavailableError(
          absl::StrFormat("disk %d block %d: no clean replica", id_, block));
    }
    bool stale_layout = false;
    std::vector<std::string> rotten;  // answered that a page fails its checksum
    for (const std::string& node : clean) {
      auto io = pool_->Io(node);
      if (!io.ok()) {
        last = io.status();
        continue;
      }
      wire::WireCall call;
      PrepareRead(ref, block, view.generation, off, len, out, &call);
      wire::WireWaiter waiter;
      (*io)->Start(&call, &waiter);
      waiter.WaitAll(Deadline(opts_->rpc_timeout_ms));
      absl::Status s = call.status;
      if (s.ok() && call.out_len == len) {
        RepairRotten(block, rotten, node);
        return absl::OkStatus();
      }
      if (absl::IsDataLoss(s)) rotten.push_back(node);
      if (s.ok()) s = absl::DataLossError("short read");
      if (IsStaleLayout(s)) {
        stale_layout = true;
        break;
      }
      if (absl::IsNotFound(s)) return s;
      last = Annotate(s, absl::StrFormat("disk %d block %d: replica %s", id_, block, node));
      LOG_DEBUG("%s; trying the next replica", last.ToString());
    }
    if (!stale_layout) return absl::UnavailableError(std::string(last.message()));
    RETURN_IF_ERROR(CatchUp(ref.layout_version));
  }
  return absl::AbortedError(
      absl::StrFormat("disk %d block %d: layout kept changing during the read", id_, block));
}

void VolumeImpl::RepairRotten(uint64_t block, const std::vector<std::string>& rotten,
                              const std::string& good) {
  if (rotten.empty()) return;
  // Stale, it is read no more; a node's repair scan copies it back from a
  // clean replica (docs/ARCHITECTURE.md, "Repair").
  absl::Status s = MarkStale(block, rotten);
  LOG_WARN("disk %d block %d: %s failed a page checksum; read from %s%s", id_, block,
           absl::StrJoin(rotten, ","), good,
           s.ok() ? "; marked stale for repair" : "; marking stale failed: " + s.ToString());
}

absl::Status VolumeImpl::Write(uint64_t offset, const char* data, size_t len) {
  ASSIGN_OR_RETURN(const uint32_t bs, CheckRange(offset, len));
  if (len == 0) return absl::OkStatus();
  return ForEachSegment(offset, len, bs, [&](uint64_t block, uint32_t off, uint32_t n, size_t at) {
    return WriteSegment(block, off, data + at, n);
  });
}

absl::Status VolumeImpl::PrepareWrite(uint64_t block, uint32_t off, const char* data,
                                      uint32_t len, WriteAttempt* a,
                                      const std::vector<std::string>& partial) {
  if (read_only()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("disk %d: snapshot '%s' is read-only", id_, snapshot_));
  }
  ASSIGN_OR_RETURN(uint64_t epoch, WriterEpoch());
  ASSIGN_OR_RETURN(BlockRef ref, GetBlock(block, /*allocate=*/true));
  bool needs_object;
  {
    absl::MutexLock l(&mu_);
    needs_object = meta::NeedsNewObject(ref.ptr(), spec_);
  }
  if (needs_object) {
    a->block = block;
    RETURN_IF_ERROR(GiveOwnObject(block, off, data, len, epoch, partial, &a->written));
    if (a->written) return absl::OkStatus();
    ASSIGN_OR_RETURN(ref, GetBlock(block, /*allocate=*/true));
  }
  // The request is the same for every replica: its header is serialized
  // once, and each send takes the data straight from the caller's buffer.
  pb::WriteRequest req;
  *req.mutable_hdr() = Header(ref.layout_version, epoch);
  req.set_block(block);
  req.set_generation(ref.ptr().generation());
  a->generation = ref.ptr().generation();
  req.set_offset(off);
  const std::string meta = req.SerializeAsString();
  // Replicas being filled by a copy get the same write, marked to be kept.
  bool syncing = false;
  for (const auto& r : ref.ptr().replicas()) syncing = syncing || r.state() == pb::SYNCING;
  std::string tracked_meta;
  if (syncing) {
    if (off % kSectorSize != 0 || len % kSectorSize != 0) {
      a->needs_sectors = true;
      return absl::OkStatus();
    }
    req.set_track(true);
    tracked_meta = req.SerializeAsString();
  }
  a->block = block;
  a->layout_version = ref.layout_version;
  a->need = Needed(Policy(), ref);
  for (const auto& r : ref.ptr().replicas()) {
    if (r.state() == pb::STALE) continue;
    if (r.state() == pb::SYNCING) a->syncing.insert(r.node());
    auto io = pool_->Io(r.node());
    if (!io.ok()) {  // a node that vanished from the catalog fails like a dead one
      a->failed.push_back(r.node());
      a->last = io.status();
      continue;
    }
    a->calls.push_back(NodeCall{r.node(), *io, {}});
    wire::WireCall& c = a->calls.back().call;
    c.method = wire::kWrite;
    c.meta = r.state() == pb::SYNCING ? tracked_meta : meta;
    c.data = data;
    c.data_len = len;
  }
  if (a->calls.empty() && a->failed.empty()) {
    return absl::UnavailableError(
        absl::StrFormat("disk %d block %d: no writable replica", id_, block));
  }
  return absl::OkStatus();
}

namespace {
// Holds a block in a set for one thread at a time (VolumeImpl::cow_busy_).
class BusyBlock {
 public:
  BusyBlock(absl::Mutex* mu, std::set<uint64_t>* busy, uint64_t block)
      : mu_(mu), busy_(busy), block_(block) {
    absl::MutexLock l(mu_);
    struct Free {
      std::set<uint64_t>* busy;
      uint64_t block;
      bool operator()() const { return !busy->count(block); }
    } free{busy_, block_};
    mu_->Await(absl::Condition(&free));
    busy_->insert(block_);
  }
  ~BusyBlock() {
    absl::MutexLock l(mu_);
    busy_->erase(block_);
  }

 private:
  absl::Mutex* mu_;
  std::set<uint64_t>* busy_;
  const uint64_t block_;
};
}  // namespace

// Copy-on-write, in three steps, each safe to die after:
//  1. the block's CLEAN replicas make the new object (a node-side copy of the
//     object the snapshot keeps; or, for a clone's block, a whole-block write
//     of the parent's data with this write merged in), durably;
//  2. one compare-and-set switches the pointer to it, keeping the old state
//     for the snapshots that read it, marking the replicas that failed step
//     1 (and SYNCING ones: their copy starts over) STALE, and bumping the
//     layout: requests under the old pointer are turned away from then on;
//  3. the write goes to the new object (the clone's already did).
// A crash before 2 leaves an unused object at the current generation that
// the next try overwrites; the pointer never names an object not yet made.
absl::Status VolumeImpl::GiveOwnObject(uint64_t block, uint32_t off, const char* data,
                                       uint32_t len, uint64_t epoch,
                                       const std::vector<std::string>& partial, bool* written) {
  *written = false;
  BusyBlock busy(&cow_mu_, &cow_busy_, block);
  const uint64_t c = block / meta::kChunkBlocks;
  bool marked_partial = partial.empty();
  // Right after a snapshot every write copies, and each chunk's switch moves
  // the layout on, turning away the copies in flight: more tries than a
  // plain write gets.
  for (int attempt = 0; attempt < 8 * kMaxAttempts; ++attempt) {
    ASSIGN_OR_RETURN(BlockRef ref, GetBlock(block, /*allocate=*/true));
    pb::DiskSpec spec;
    {
      absl::MutexLock l(&mu_);
      spec = spec_;
    }
    if (!meta::NeedsNewObject(ref.ptr(), spec)) return absl::OkStatus();  // done meanwhile
    const bool inherited = ref.ptr().inherited();
    const uint64_t from = ref.ptr().generation(), gen = spec.generation();
    if (!marked_partial) {
      // The replicas that took this write into the object a snapshot now
      // keeps, while the others turned it away: that object must read the
      // same everywhere, so they go stale (and are copied back whole).
      marked_partial = true;
      bool other_clean = false;
      for (const auto& r : ref.ptr().replicas()) {
        other_clean = other_clean || (r.state() == pb::CLEAN &&
                                      std::find(partial.begin(), partial.end(), r.node()) == partial.end());
      }
      if (!inherited && other_clean) {
        LOG_WARN("disk %d block %d: a write landed on %s only, across a snapshot; marking stale",
                 id_, block, absl::StrJoin(partial, ","));
        RETURN_IF_ERROR(MarkStale(block, partial));
        continue;
      }
    }
    std::vector<std::string> targets = CleanReplicas(ref);
    if (targets.empty()) {
      return absl::UnavailableError(
          absl::StrFormat("disk %d block %d: no clean replica to copy on write", id_, block));
    }
    // Step 1.
    std::string whole;  // a clone's block: the parent's data, this write merged in
    pb::WriteRequest wreq;
    pb::CopyUpRequest creq;
    if (inherited) {
      const uint64_t block_len = std::min<uint64_t>(spec.block_size(),
                                                    spec.size() - block * spec.block_size());
      whole.assign(block_len, '\0');
      // A block left inherited by a flatten (its parent had zeros there)
      // reads as zeros once the disk has no parent.
      if (spec.has_parent()) {
        RETURN_IF_ERROR(ReadParent(block, 0, static_cast<uint32_t>(block_len), whole.data()));
      }
      memcpy(whole.data() + off, data, len);
      *wreq.mutable_hdr() = Header(ref.layout_version, epoch);
      wreq.set_block(block);
      wreq.set_generation(gen);
      wreq.set_offset(0);
    } else {
      *creq.mutable_hdr() = Header(ref.layout_version, epoch);
      creq.set_block(block);
      creq.set_generation(gen);
      creq.set_from_generation(from);
    }
    const std::string meta = inherited ? wreq.SerializeAsString() : creq.SerializeAsString();
    std::deque<NodeCall> calls;
    std::vector<std::string> ok, failed;
    absl::Status last = absl::OkStatus();
    for (const auto& node : targets) {
      auto io = pool_->Io(node);
      if (!io.ok()) {
        failed.push_back(node);
        last = io.status();
        continue;
      }
      calls.push_back(NodeCall{node, *io, {}});
      wire::WireCall& call = calls.back().call;
      call.method = inherited ? wire::kWrite : wire::kCopyUp;
      call.meta = meta;
      if (inherited) {
        call.data = whole.data();
        call.data_len = whole.size();
      }
    }
    wire::WireWaiter waiter;
    for (auto& nc : calls) nc.io->Start(&nc.call, &waiter);
    waiter.WaitAll(Deadline(opts_->rpc_timeout_ms * 2));
    bool stale_layout = false;
    for (auto& nc : calls) {
      const absl::Status& st = nc.call.status;
      if (st.ok()) {
        ok.push_back(nc.node);
      } else if (IsStaleLayout(st)) {
        stale_layout = true;
      } else if (IsFenced(st)) {
        absl::MutexLock l(&writer_mu_);
        fenced_ = true;
        return absl::PermissionDeniedError(std::string(st.message()));
      } else if (absl::IsNotFound(st) || absl::IsOutOfRange(st) || absl::IsInvalidArgument(st)) {
        return st;
      } else {
        failed.push_back(nc.node);
        last = Annotate(st, "replica " + nc.node);
      }
    }
    if (stale_layout) {
      RETURN_IF_ERROR(CatchUp(ref.layout_version));
      continue;
    }
    const uint32_t need = Needed(Policy(), ref);
    if (ok.size() < need || ok.empty()) {
      return absl::UnavailableError(absl::StrFormat(
          "disk %d block %d: copy on write reached %d replica(s), the policy needs %d: %s", id_,
          block, ok.size(), need, last.ToString()));
    }
    // Step 2, with the other switches of the chunk waiting meanwhile.
    Switch sw{block, inherited, from, gen, targets, ok, false, false, false, absl::OkStatus()};
    auto r = SwitchPointers(c, &sw);  // also brings the cached layout up to date
    const bool switched = sw.switched, raced = sw.raced;
    if (absl::IsNotFound(r)) return r;
    if (absl::IsAborted(r)) continue;  // contention: copy and switch again
    RETURN_IF_ERROR(r);
    if (raced) continue;
    if (!failed.empty()) {
      LOG_WARN("disk %d block %d: copy on write failed on %s (%s); marked stale", id_, block,
               absl::StrJoin(failed, ","), last.ToString());
    }
    if (inherited && switched) {
      absl::MutexLock l(&mu_);
      for (const auto& n : ok) dirty_[n].insert(block);
      *written = true;
    }
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrFormat("disk %d block %d: layout kept changing during copy on write", id_, block));
}

// Group commit: the first switch of a chunk to arrive takes every switch
// queued for that chunk meanwhile into one compare-and-set (one layout bump,
// one turn of retries), while the others wait for its answer. Right after a
// snapshot, under random writes, every write copies: one switch each would
// contend on the same znodes and turn each other's writes away.
absl::Status VolumeImpl::SwitchPointers(uint64_t chunk, Switch* mine) {
  absl::MutexLock l(&switch_mu_);
  switch_queue_[chunk].push_back(mine);
  while (!mine->done && switching_.count(chunk) != 0) switch_cv_.Wait(&switch_mu_);
  if (mine->done) return mine->status;  // else nobody leads: this one does
  switching_.insert(chunk);
  while (!switch_queue_[chunk].empty()) {
    std::vector<Switch*> batch;
    batch.swap(switch_queue_[chunk]);
    switch_mu_.Unlock();
    const int base = static_cast<int>(chunk * meta::kChunkBlocks);
    bool any = false;
    pb::BlockChunk seen;
    auto r = catalog_->UpdateChunkWithSpec(
        id_, chunk,
        [&](const pb::DiskSpec& now, pb::BlockChunk* ch) -> absl::StatusOr<bool> {
          any = false;
          for (Switch* sw : batch) {
            sw->switched = sw->raced = false;
            pb::BlockPtr* ptr = ch->mutable_blocks(static_cast<int>(sw->block) - base);
            // Every CLEAN replica must have been asked to copy: one that
            // joined since (a relocation's) would otherwise be marked stale.
            bool asked = true;
            for (const auto& rep : ptr->replicas()) {
              asked = asked && (rep.state() != pb::CLEAN ||
                                std::find(sw->targets.begin(), sw->targets.end(), rep.node()) !=
                                    sw->targets.end());
            }
            if (ptr->inherited() != sw->inherited || ptr->generation() != sw->from ||
                now.generation() != sw->gen || !asked) {
              sw->raced = true;  // another switch, snapshot or move: look again
              continue;
            }
            meta::Advance(ptr, sw->gen, now);
            for (auto& rep : *ptr->mutable_replicas()) {
              const bool took = std::find(sw->ok.begin(), sw->ok.end(), rep.node()) != sw->ok.end();
              if (rep.state() == pb::SYNCING || (rep.state() == pb::CLEAN && !took)) {
                rep.set_state(pb::STALE);
              }
            }
            sw->switched = any = true;
          }
          return any;
        },
        &seen);
    absl::Status status = r.status();
    if (status.ok()) status = AdoptOwnChange(r, any, chunk, std::move(seen));
    switch_mu_.Lock();
    for (Switch* sw : batch) {
      sw->status = status;
      sw->done = true;
    }
    switch_cv_.SignalAll();
  }
  switching_.erase(chunk);
  switch_queue_.erase(chunk);
  switch_cv_.SignalAll();
  return mine->status;
}

absl::Status VolumeImpl::CatchUp(uint64_t sent) {
  {
    absl::MutexLock l(&mu_);
    if (spec_.layout_version() > sent) return absl::OkStatus();  // a retry sends the newer one
  }
  return RefreshLayout(/*arm_watch=*/false);
}

absl::Status VolumeImpl::AdoptOwnChange(const absl::StatusOr<pb::DiskSpec>& spec, bool changed,
                                      uint64_t c, pb::BlockChunk chunk) {
  {
    absl::MutexLock l(&mu_);
    const uint64_t have = spec_.layout_version(), now = spec->layout_version();
    // Unchanged, the chunk was read after a spec of the cached version: it
    // is at least that new. Changed, our compare-and-set moved the layout
    // from `have` to `now` with nothing in between: only this chunk differs.
    if (now == have + (changed ? 1 : 0) && spec->generation() == spec_.generation() &&
        spec->has_parent() == spec_.has_parent()) {
      spec_ = *spec;
      chunks_[c] = std::make_shared<const pb::BlockChunk>(std::move(chunk));
      return absl::OkStatus();
    }
  }
  return RefreshLayout(/*arm_watch=*/false);
}

absl::Status VolumeImpl::ConcludeWrite(WriteAttempt* a, bool* retry) {
  *retry = false;
  std::vector<std::string>& ok = a->ok;
  ok.clear();
  bool stale_layout = false;
  for (auto& nc : a->calls) {
    const std::string& node = nc.node;
    const absl::Status& status = nc.call.status;
    if (status.ok()) {
      ok.push_back(node);
    } else if (IsStaleLayout(status)) {
      stale_layout = true;
    } else if (IsFenced(status)) {
      absl::MutexLock l(&writer_mu_);
      fenced_ = true;
      LOG_WARN("disk %d: %s", id_, status.ToString());
      return absl::PermissionDeniedError(std::string(status.message()));
    } else if (absl::IsNotFound(status) || absl::IsOutOfRange(status) ||
               absl::IsInvalidArgument(status)) {
      return status;  // the disk is gone or shrank under us: nothing to retry
    } else {
      a->failed.push_back(node);
      a->last = Annotate(status, "replica " + node);
    }
  }
  {
    absl::MutexLock l(&mu_);
    for (const auto& n : ok) dirty_[n].insert(a->block);
  }
  if (stale_layout) {
    RETURN_IF_ERROR(CatchUp(a->layout_version));
    *retry = true;  // rewriting the replicas that took it is harmless
    return absl::OkStatus();
  }
  // A SYNCING replica holds only what was written since its copy began: it
  // counts toward the policy's number, but a CLEAN one must have the write
  // too, or the failed CLEAN replica would be marked stale with no whole
  // copy of the block left (found by tests/integration/node_chaos.sh).
  size_t clean_ok = 0;
  for (const auto& n : ok) clean_ok += !a->syncing.count(n);
  if (ok.size() < a->need || clean_ok == 0) {
    a->short_of_replicas = true;
    return absl::UnavailableError(absl::StrFormat(
        "disk %d block %d: %d replica(s) took the write (%d clean), the policy needs %d and "
        "one clean%s",
        id_, a->block, ok.size(), clean_ok, a->need,
        a->failed.empty() ? "" : ": " + std::string(a->last.message())));
  }
  if (a->failed.empty()) return absl::OkStatus();
  // Enough survivors have the data; the failed replicas must never be read
  // for this block again, so mark them before acknowledging.
  LOG_WARN("disk %d block %d: %s; marking %s stale", id_, a->block, a->last.ToString(),
           absl::StrJoin(a->failed, ","));
  return MarkStale(a->block, a->failed);
}

absl::Status VolumeImpl::GiveUp(WriteAttempt* a, absl::Status why) {
  // Replicas must not go on serving different data for the block: if a
  // CLEAN replica took the write, those that missed it go stale; if only
  // SYNCING ones did, they do (their copy starts again from a CLEAN one).
  std::vector<std::string> took_clean, took_syncing;
  for (const auto& n : a->ok) (a->syncing.count(n) ? took_syncing : took_clean).push_back(n);
  const std::vector<std::string>& mark = !took_clean.empty() ? a->failed : took_syncing;
  if (!a->ok.empty() && !mark.empty()) {
    absl::Status s = MarkStale(a->block, mark);
    if (!s.ok()) LOG_WARN("disk %d block %d: after giving up: %s", id_, a->block, s.ToString());
  }
  LOG_WARN("%s; giving up after the policy's hold time", why.ToString());
  return why;
}

// Short of the replicas the policy needs, a write is held: sent again (to
// every replica: rewriting those that took it is harmless) with pauses, the
// layout re-read each time (a repair may bring a replica back as SYNCING),
// until enough take it or the hold time is up. So is a write that needs
// ZooKeeper (a chunk to allocate, the writer epoch, a replica to mark stale)
// while it is unreachable: I/O that needs none goes on meanwhile.
absl::Status VolumeImpl::WriteSegment(uint64_t block, uint32_t off, const char* data,
                                      uint32_t len, absl::Time began,
                                      std::vector<std::string> partial) {
  std::optional<Hold> hold;
  auto held = [&](const absl::Status& why) {
    if (!hold) {
      const uint32_t ms = meta::HoldMs(Policy().failure);
      LOG_WARN("%s; holding the write up to %d ms", why.ToString(), ms);
      hold.emplace(began, ms);
    }
    if (!hold->Wait()) return false;
    (void)RefreshLayout(/*arm_watch=*/false);  // ZooKeeper away: the cached layout
    return true;
  };
  for (int attempt = 0;;) {
    WriteAttempt a;
    absl::Status prepared = PrepareWrite(block, off, data, len, &a, partial);
    if (absl::IsUnavailable(prepared)) {
      if (held(prepared)) continue;
      return prepared;
    }
    RETURN_IF_ERROR(prepared);
    if (a.written) return absl::OkStatus();
    if (a.needs_sectors) return WriteSectors(block, off, data, len);
    wire::WireWaiter waiter;
    for (auto& nc : a.calls) nc.io->Start(&nc.call, &waiter);
    waiter.WaitAll(hold ? hold->Deadline(opts_->rpc_timeout_ms) : Deadline(opts_->rpc_timeout_ms));
    bool retry;
    absl::Status s = ConcludeWrite(&a, &retry);
    if (a.short_of_replicas || absl::IsUnavailable(s)) {
      if (held(s)) continue;
      return GiveUp(&a, s);
    }
    RETURN_IF_ERROR(s);
    if (!retry) return absl::OkStatus();
    partial = a.ok;
    if (++attempt < kMaxAttempts) continue;
    // The layout keeps moving (right after a snapshot, every block's first
    // write switches a pointer): pause, as a write short of replicas is
    // held, and go on trying until the hold time is up.
    const absl::Status why = absl::UnavailableError(
        absl::StrFormat("disk %d block %d: layout kept changing during the write", id_, block));
    if (!held(why)) return why;
    attempt = 0;
  }
}

absl::Status VolumeImpl::WriteSectors(uint64_t block, uint32_t off, const char* data,
                                      uint32_t len) {
  // Whole sectors around [off, off + len); the block size is a multiple of 4 KiB.
  const uint32_t start = off / kSectorSize * kSectorSize;
  const uint32_t end = (off + len + kSectorSize - 1) / kSectorSize * kSectorSize;
  std::string buf(end - start, '\0');
  // Only partly written edge sectors need their current content.
  const bool head = off != start || off + len < start + kSectorSize;
  const bool tail = off + len != end && (end - start > kSectorSize || !head);
  if (head) RETURN_IF_ERROR(ReadSegment(block, start, kSectorSize, buf.data()));
  if (tail) {
    RETURN_IF_ERROR(ReadSegment(block, end - kSectorSize, kSectorSize,
                                buf.data() + (end - start - kSectorSize)));
  }
  memcpy(buf.data() + (off - start), data, len);
  // A layout that changed meanwhile may no longer need the widening; the
  // widened write is right either way.
  return WriteSegment(block, start, buf.data(), end - start);
}

void VolumeImpl::WriteAsync(uint64_t offset, const char* data, size_t len, Done done) {
  auto bs = CheckRange(offset, len);
  if (!bs.ok()) return done(bs.status());
  const uint64_t block = offset / *bs;
  const uint32_t off = static_cast<uint32_t>(offset % *bs);
  // Large or block-crossing writes run inline: the fast path keeps a copy of
  // the data for a retry, which only small writes can afford.
  if (len == 0 || len > kMaxAsyncWrite || off + len > *bs) {
    return done(Write(offset, data, len));
  }
  struct Op {
    WriteAttempt attempt;
    absl::Time began = absl::Now();
    std::string copy;
    Done done;
    // One per call plus one for the starter (see ReadAsync): the last to
    // drop it runs `finish`.
    std::atomic<int> open{0};
  };
  auto* op = new Op;
  op->copy.assign(data, len);
  op->done = std::move(done);
  absl::Status s = PrepareWrite(block, off, op->copy.data(), static_cast<uint32_t>(len),
                                &op->attempt);
  if (s.ok() && op->attempt.written) {  // a clone's copy-up carried it
    std::unique_ptr<Op> own(op);
    return own->done(absl::OkStatus());
  }
  if (!s.ok() || !op->attempt.failed.empty() || op->attempt.needs_sectors ||
      op->attempt.calls.size() < op->attempt.need) {  // the slow path
    std::unique_ptr<Op> own(op);
    return own->done(s.ok() || absl::IsUnavailable(s)
                         ? WriteSegment(block, off, data, static_cast<uint32_t>(len), own->began)
                         : s);
  }
  // Runs once every replica answered, on the reader thread of the last one.
  // All well: acknowledge there. Anything else (a dead replica to mark
  // stale in ZooKeeper, a layout to re-read and retry) is WriteSegment's
  // work, on a thread of its own. As in ReadAsync, nothing of `this` is
  // touched after `done` is gone.
  OpCounter* ops = async_ops_;
  auto finish = [this, op, ops, block, off, len] {
    std::unique_ptr<Op> own(op);
    bool all_ok = true;
    for (auto& nc : own->attempt.calls) all_ok = all_ok && nc.call.status.ok();
    if (all_ok) {
      bool retry;
      absl::Status st = ConcludeWrite(&own->attempt, &retry);  // records the dirty nodes
      own->done(st);
      own.reset();
      ops->Done();
      return;
    }
    std::thread([this, ops, block, off, len, own = std::move(own)]() mutable {
      bool retry;
      absl::Status st = ConcludeWrite(&own->attempt, &retry);
      if ((st.ok() && retry) || own->attempt.short_of_replicas ||
          absl::IsUnavailable(st)) {  // WriteSegment holds it
        std::vector<std::string> partial;
        if (st.ok() && retry) partial = own->attempt.ok;
        st = WriteSegment(block, off, own->copy.data(), static_cast<uint32_t>(len), own->began,
                          std::move(partial));
      }
      own->done(st);
      own.reset();
      ops->Done();
    }).detach();
  };
  ops->Add();
  op->open = static_cast<int>(op->attempt.calls.size()) + 1;
  for (auto& nc : op->attempt.calls) {
    nc.call.deadline = Deadline(opts_->rpc_timeout_ms);
    nc.call.on_done = [op, finish] {
      if (--op->open == 0) finish();
    };
  }
  for (auto& nc : op->attempt.calls) nc.io->Start(&nc.call, nullptr);
  if (--op->open == 0) finish();
}

absl::Status VolumeImpl::MarkStale(uint64_t block, const std::vector<std::string>& nodes) {
  for (const auto& n : nodes) {
    auto spec = catalog_->MarkStale(id_, block, n);
    if (!spec.ok()) return Annotate(spec.status(), "marking replica " + n + " stale");
  }
  return RefreshLayout(/*arm_watch=*/false);
}

std::set<std::string> VolumeImpl::FlushNodes(const std::set<std::string>& nodes,
                                             absl::Time deadline) {
  std::deque<NodeCall> calls;
  std::set<std::string> failed;
  for (const auto& node : nodes) {
    auto io = pool_->Io(node);
    if (io.ok()) {
      calls.push_back(NodeCall{node, *io, {}});
      calls.back().call.method = wire::kFlush;
    } else {
      failed.insert(node);
    }
  }
  wire::WireWaiter waiter;
  for (auto& nc : calls) nc.io->Start(&nc.call, &waiter);
  waiter.WaitAll(deadline);
  for (auto& nc : calls) {
    if (!nc.call.status.ok()) {
      LOG_WARN("disk %d: flush on %s: %s", id_, nc.node, nc.call.status.ToString());
      failed.insert(nc.node);
    }
  }
  return failed;
}

// A replica that could not flush may lose writes it acknowledged. Where each
// block it was written still has the replicas the policy needs durable
// elsewhere, it is marked stale for those blocks and the flush succeeds.
// Otherwise the flush is held (the failed nodes asked again) for the
// policy's hold time; then the failed replica is marked stale where some
// other replica is durable, the blocks with none stay dirty for a later
// flush, and the flush fails (EIO).
absl::Status VolumeImpl::Flush() {
  std::map<std::string, std::set<uint64_t>> dirty;
  {
    absl::MutexLock l(&mu_);
    dirty.swap(dirty_);
  }
  if (dirty.empty()) return absl::OkStatus();
  std::set<std::string> pending;
  for (const auto& [node, blocks] : dirty) pending.insert(node);
  const absl::Time began = absl::Now();
  std::optional<Hold> hold;
  for (;;) {
    const std::set<std::string> failed =
        FlushNodes(pending, hold ? hold->Deadline(opts_->rpc_timeout_ms * 2)
                                 : Deadline(opts_->rpc_timeout_ms * 2));
    if (failed.empty()) return absl::OkStatus();
    const IoPolicy p = Policy();
    struct Miss {
      uint64_t block;
      std::string node;
      uint32_t durable_clean;  // CLEAN replicas that did not fail
    };
    std::vector<Miss> misses;
    absl::Status short_of = absl::OkStatus();
    for (const auto& node : failed) {
      for (uint64_t block : dirty[node]) {
        auto ref = GetBlock(block, false);
        if (!ref.ok()) {  // ZooKeeper away: try again on the next flush
          absl::MutexLock l(&mu_);
          for (const auto& n : failed) dirty_[n].insert(dirty[n].begin(), dirty[n].end());
          return ref.status();
        }
        // As for a write: SYNCING replicas count toward the policy's
        // number, but one CLEAN replica must be durable.
        uint32_t durable = 0, durable_clean = 0;
        for (const auto& r : ref->ptr().replicas()) {
          if (r.state() == pb::STALE || failed.count(r.node())) continue;
          ++durable;
          durable_clean += r.state() == pb::CLEAN;
        }
        misses.push_back({block, node, durable_clean});
        if ((durable < Needed(p, *ref) || durable_clean == 0) && short_of.ok()) {
          short_of = absl::UnavailableError(absl::StrFormat(
              "disk %d block %d: flush failed on %s, %d other replica(s) durable (%d clean), "
              "the policy needs %d and one clean",
              id_, block, node, durable, durable_clean, Needed(p, *ref)));
        }
      }
    }
    if (!short_of.ok()) {
      if (!hold) {
        LOG_WARN("%s; holding the flush up to %d ms", short_of.ToString(), meta::HoldMs(p.failure));
        hold.emplace(began, meta::HoldMs(p.failure));
      }
      if (hold->Wait()) {
        pending = failed;
        (void)RefreshLayout(/*arm_watch=*/false);
        continue;
      }
    }
    for (const Miss& m : misses) {
      if (m.durable_clean == 0) {  // its last whole copy: keep it dirty, mark nothing
        absl::MutexLock l(&mu_);
        dirty_[m.node].insert(m.block);
        continue;
      }
      LOG_WARN("disk %d block %d: flush failed on %s; marking it stale", id_, m.block, m.node);
      RETURN_IF_ERROR(MarkStale(m.block, {m.node}));
    }
    return short_of;
  }
}

}  // namespace ukai::client
