#include "client/volume_impl.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/volume_rules.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_client.h"
#include "common/wire_format.h"
#include "meta/placement.h"

namespace ukai::client {
namespace {

// Writes to a replica being filled by a copy cover whole sectors (the node
// tracks them per 512-byte sector; node/block_store.h).
constexpr uint32_t kSectorSize = 512;
// WriteAsync copies the data of writes up to this size and answers them from
// the transport's thread; larger ones run inline.
constexpr size_t kMaxAsyncWrite = 128 << 10;

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
                       uint64_t id, std::function<void()> on_change, AsyncIo* async,
                       std::string snapshot)
    : catalog_(catalog),
      pool_(pool),
      opts_(opts),
      id_(id),
      on_change_(std::move(on_change)),
      async_(async),
      snapshot_(std::move(snapshot)) {}

VolumeImpl::~VolumeImpl() { guard_.Kill(); }

absl::Status VolumeImpl::Init() { return RefreshLayout(/*arm_watch=*/true); }

DiskAttr VolumeImpl::attr() const {
  absl::MutexLock l(&mu_);
  if (snapshot_.empty()) {
    return DiskAttr{spec_.id(), spec_.name(), spec_.size(), spec_.block_size(), spec_.created_ms()};
  }
  const pb::Snapshot* s = meta::FindSnapshot(spec_, snapshot_);
  return DiskAttr{spec_.id(),
                  spec_.name() + "@" + snapshot_,
                  view_size_,
                  spec_.block_size(),
                  s != nullptr ? s->created_ms() : spec_.created_ms(),
                  true,
                  view_};
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
  if (absl::IsNotFound(v.status()) || (v.ok() && v->spec.state() != pb::DiskSpec::READY)) {
    gone_ = true;
    return absl::NotFoundError(absl::StrFormat("disk %d was deleted", id_));
  }
  RETURN_IF_ERROR(v.status());
  if (v->spec.layout_version() >= spec_.layout_version()) {
    if (v->spec.layout_version() != spec_.layout_version()) chunks_.clear();
    // A clone flattened meanwhile reads its parent no more.
    if (!v->spec.has_parent() ||
        (spec_.has_parent() && v->spec.parent().disk_id() != spec_.parent().disk_id())) {
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

absl::StatusOr<uint32_t> VolumeImpl::CheckRange(uint64_t offset, size_t len) const {
  absl::MutexLock l(&mu_);
  if (gone_) {
    return absl::NotFoundError(
        snapshot_.empty() ? absl::StrFormat("disk '%s' was deleted", spec_.name())
                          : absl::StrFormat("snapshot %s@%s was deleted", spec_.name(), snapshot_));
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
    ASSIGN_OR_RETURN(auto replicas, meta::ChooseReplicas(spec.placement(), pool_->LiveNodes(),
                                                         pool_->my_site(), id_ * 1000003 + c));
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
    return FencedError(absl::StrFormat(
        "disk %d: another host took over writing; reopen the disk to write again", id_));
  }
  if (epoch_ == 0) {
    ASSIGN_OR_RETURN(epoch_,
                     catalog_->TakeWriterEpoch(id_, opts_->host, opts_->site, opts_->identity));
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

void VolumeImpl::PrepareRead(const BlockRef& ref, uint64_t block, uint64_t generation, uint32_t off,
                             uint32_t len, char* out, wire::WireCall* call) const {
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
  // fallback, on the slow-path pool: the reader thread must never block.
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
  OpCounter* ops = &async_->ops;
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
    OffFastPath([this, ops, block, off, len, out,
                 done = std::move(own->done)](const absl::Status& admitted) mutable {
      done(admitted.ok() ? ReadSegment(block, off, static_cast<uint32_t>(len), out) : admitted);
      done = nullptr;
      ops->Done();
    });
  };
  op->call.on_done = [op, finish] {
    if (--op->holds == 0) finish();
  };
  op->io->Start(&op->call, nullptr);
  if (--op->holds == 0) finish();
}

void VolumeImpl::OffFastPath(std::function<void(const absl::Status&)> task) {
  // One object, shared by the pool's copy and this frame: the task resets
  // what it holds itself, so whichever lets go last frees nothing of the
  // volume's.
  auto shared = std::make_shared<std::function<void(const absl::Status&)>>(std::move(task));
  if (async_->slow_path.TrySchedule([shared] { (*shared)(absl::OkStatus()); })) return;
  LOG_WARN("disk %d: %d threads busy and %d I/Os queued off the fast path; failing one", id_,
           AsyncIo::kSlowPathThreads, AsyncIo::kSlowPathQueue);
  (*shared)(absl::UnavailableError("too many I/Os waiting off the fast path"));
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
  LOG_WARN("%s; holding the read up to %d ms (policy: wait)", s.ToString(),
           meta::HoldMs(p.failure));
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

absl::Status VolumeImpl::PrepareWrite(uint64_t block, uint32_t off, const char* data, uint32_t len,
                                      WriteAttempt* a, const std::vector<std::string>& partial) {
  if (read_only()) {
    return ReadOnlyError(absl::StrFormat("disk %d: snapshot '%s' is read-only", id_, snapshot_));
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
      return FencedError(status.message());
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
absl::Status VolumeImpl::WriteSegment(uint64_t block, uint32_t off, const char* data, uint32_t len,
                                      absl::Time began, std::vector<std::string> partial) {
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

absl::Status VolumeImpl::ConcludeOffFastPath(AsyncWrite* op, uint64_t block, uint32_t off,
                                             uint32_t len) {
  bool retry;
  absl::Status st = ConcludeWrite(&op->attempt, &retry);
  if ((st.ok() && retry) || op->attempt.short_of_replicas ||
      absl::IsUnavailable(st)) {  // WriteSegment holds it
    std::vector<std::string> partial;
    if (st.ok() && retry) partial = op->attempt.ok;
    st = WriteSegment(block, off, op->copy.data(), len, op->began, std::move(partial));
  }
  return st;
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
  using Op = AsyncWrite;
  auto* op = new Op;
  op->copy.assign(data, len);
  op->done = std::move(done);
  absl::Status s =
      PrepareWrite(block, off, op->copy.data(), static_cast<uint32_t>(len), &op->attempt);
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
  // work, on the slow-path pool. As in ReadAsync, nothing of `this` is
  // touched after `done` is gone.
  OpCounter* ops = &async_->ops;
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
    OffFastPath([this, ops, block, off, len,
                 own = std::shared_ptr<Op>(std::move(own))](const absl::Status& admitted) mutable {
      if (!admitted.ok()) {
        own->done(admitted);
        own.reset();
        ops->Done();
        return;
      }
      own->done(ConcludeOffFastPath(own.get(), block, off, static_cast<uint32_t>(len)));
      own.reset();
      ops->Done();
    });
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

}  // namespace ukai::client
