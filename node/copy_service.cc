#include "node/copy_service.h"

#include <deque>
#include <optional>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/process.h"
#include "common/status.h"
#include "common/wire_format.h"
#include "meta/generations.h"
#include "meta/layout.h"
#include "node/block_io.h"
#include "security/authorizer.h"

namespace ukai::node {
namespace {

constexpr uint32_t kPage = meta::kPageSize;

ObjectId ObjectOf(const pb::IoHeader& h, uint64_t block, uint64_t generation) {
  return {h.disk_id(), block, generation};
}

}  // namespace

grpc::Status CopyService::Fence(grpc::ServerContext* ctx, const pb::FenceRequest* req,
                                pb::FenceResponse*) {
  if (absl::Status s = FromRegisteredNode(*ctx); !s.ok()) return ToGrpc(s);
  // A fence holds a handler thread while it waits: at most kMaxFenceMs.
  constexpr uint32_t kMaxFenceMs = 120000;
  if (req->timeout_ms() > kMaxFenceMs) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrFormat("fence timeout %d ms: at most %d", req->timeout_ms(), kMaxFenceMs)));
  }
  absl::Duration timeout = absl::Milliseconds(req->timeout_ms() ? req->timeout_ms() : 30000);
  return ToGrpc(disks_->Fence(req->disk_id(), req->layout_version(), timeout));
}

wire::WireClient* CopyService::ClientFor(const std::string& io_address) {
  absl::MutexLock l(&mu_);
  auto& c = clients_[io_address];
  if (!c) {
    wire::WireClientOptions o = io_;
    o.reader_nice = kBackgroundNice;
    c = std::make_unique<wire::WireClient>(io_address, o);
  }
  return c.get();
}

std::string CopyService::RegisteredAddress(const std::string& node, const std::string& claimed) {
  {
    absl::MutexLock l(&mu_);
    auto it = registered_.find(node);
    if (it != registered_.end() && (claimed.empty() || claimed == it->second)) return it->second;
  }
  // New, or moved: read the nodes again.
  auto nodes = catalog_->ListNodes();
  if (!nodes.ok()) return "";
  absl::MutexLock l(&mu_);
  registered_.clear();
  for (const pb::NodeInfo& n : *nodes) registered_[n.id()] = n.io_address();
  auto it = registered_.find(node);
  return it == registered_.end() ? "" : it->second;
}

absl::Status CopyService::FromRegisteredNode(const grpc::ServerContextBase& ctx) {
  std::optional<security::Identity> caller = security::CallerIdentity(ctx);
  if (!caller.has_value()) return absl::OkStatus();  // plaintext: no identities
  if (caller->role == security::Role::kNode && !RegisteredAddress(caller->id, "").empty()) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError("refused: " + caller->ToString() +
                                     " is not a registered node");
}

absl::StatusOr<wire::WireClient*> CopyService::SourceFor(const std::string& node,
                                                         const std::string& claimed) {
  std::string address = RegisteredAddress(node, claimed);
  if (address.empty()) {
    return absl::FailedPreconditionError("copy source '" + node +
                                         "' is not a registered node with a block I/O address");
  }
  if (!claimed.empty() && claimed != address) {
    return absl::PermissionDeniedError("refused: copy source " + node + " is at " + address +
                                       ", not " + claimed);
  }
  return ClientFor(address);
}

namespace {

// Pulls in flight per unlimited copy: the next range is on its way while one
// is stored.
constexpr int kPullsInFlight = 2;
// Pages per pull of a copy under a bandwidth limit (128 KiB).
constexpr uint32_t kLimitedPullPages = 32;

// One kPull call of up to `max_pages` pages and the buffer its reply lands in
// (the pages, then a flag byte each).
struct PullCall {
  explicit PullCall(uint32_t max_pages)
      : cap(size_t{max_pages} * (kPage + 1)), buf(new char[cap]) {}
  const size_t cap;
  std::unique_ptr<char[]> buf;
  uint32_t first = 0, pages = 0;
  std::unique_ptr<wire::WireCall> call;
  std::unique_ptr<wire::WireWaiter> waiter;
};

absl::Time DeadlineOf(const grpc::ServerContext& ctx) {
  auto d = ctx.deadline();
  return d == std::chrono::system_clock::time_point::max() ? absl::InfiniteFuture()
                                                           : absl::FromChrono(d);
}

// Stores what pull `p` brought (the stored pages, then a flag byte per page
// asked for); `*stored_bytes` the bytes of the pages stored. DATA_LOSS for
// a reply of the wrong shape.
absl::Status ApplyPull(BlockStore* store, const pb::CopyBlockRequest& req, const ObjectId& obj,
                       const PullCall& p, uint64_t* stored_bytes) {
  const size_t got = p.call->out_len;
  size_t stored = 0;
  std::vector<bool> present;
  if (got >= p.pages) {
    const char* flags = p.buf.get() + got - p.pages;
    present.assign(p.pages, false);
    for (uint32_t i = 0; i < p.pages; ++i) {
      present[i] = flags[i] != 0;
      stored += present[i] ? 1 : 0;
    }
  }
  if (got < p.pages || got - p.pages != stored * kPage) {
    return absl::DataLossError(
        absl::StrFormat("pull from %s: a %d-byte reply for pages [%d, +%d) of block %d",
                        req.source(), got, p.first, p.pages, req.block()));
  }
  *stored_bytes = stored * kPage;
  if (stored == 0) return absl::OkStatus();  // nothing stored there: thin stays thin
  return Annotate(
      store->ApplyPulled(obj, p.first, present, absl::string_view(p.buf.get(), got - p.pages)),
      "storing pages pulled from " + req.source());
}

}  // namespace

// The pulls of one block copy from its source: which pages each asks for.
struct CopyService::PullPlan {
  const pb::CopyBlockRequest* req;
  wire::WireClient* source;
  uint32_t pages;       // in the block
  uint32_t pull_pages;  // per pull
  uint32_t next = 0;    // the first page no pull has asked for yet

  // Sends `p` for the next range of pages.
  void Start(PullCall* p) {
    p->first = next;
    p->pages = std::min(pull_pages, pages - next);
    next += p->pages;
    pb::PullRequest pull;
    *pull.mutable_hdr() = req->hdr();
    pull.set_block(req->block());
    pull.set_generation(req->generation());
    pull.set_first_page(p->first);
    pull.set_pages(p->pages);
    p->call = std::make_unique<wire::WireCall>();
    p->waiter = std::make_unique<wire::WireWaiter>();
    p->call->method = wire::kPull;
    p->call->meta = pull.SerializeAsString();
    p->call->out = p->buf.get();
    p->call->out_cap = p->cap;
    source->Start(p->call.get(), p->waiter.get());
  }
};

grpc::Status CopyService::CopyBlock(grpc::ServerContext* ctx, const pb::CopyBlockRequest* req,
                                    pb::CopyBlockResponse* resp) {
  if (absl::Status s = FromRegisteredNode(*ctx); !s.ok()) return ToGrpc(s);
  // On a thread of its own at kBackgroundNice: foreground I/O gets the CPU first.
  grpc::Status result;
  std::thread t([&] {
    SetThreadNice(kBackgroundNice);
    result = Copy(ctx, req, resp);
  });
  t.join();
  return result;
}

grpc::Status CopyService::Copy(grpc::ServerContext* ctx, const pb::CopyBlockRequest* req,
                               pb::CopyBlockResponse* resp) {
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  absl::Status s = CheckObject(req->hdr().disk_id(), *g, req->block(), req->generation());
  if (!s.ok()) return ToGrpc(s);
  auto source = SourceFor(req->source(), req->source_io_address());
  if (!source.ok()) return ToGrpc(source.status());
  // Unlimited: large pulls, two in flight, for throughput. Under a limit:
  // small ones, one at a time, so the work comes in small even steps
  // between foreground requests (foreground p99 during a 64 MB/s copy
  // ~15% lower than with 1 MiB pairs, measured).
  const bool limited = req->bandwidth_bps() != 0 || node_cap_.rate() != 0;
  PullPlan plan{req, *source, PagesInBlock(*g, req->block()),
                limited ? kLimitedPullPages : kMaxPullPages};
  auto bytes = Pull(*ctx, &plan, limited ? 1 : kPullsInFlight);
  if (!bytes.ok()) return ToGrpc(bytes.status());
  resp->set_bytes(*bytes);
  return grpc::Status::OK;
}

absl::StatusOr<uint64_t> CopyService::Pull(const grpc::ServerContext& ctx, PullPlan* plan,
                                           int in_flight) {
  const pb::CopyBlockRequest& req = *plan->req;
  const ObjectId obj = ObjectOf(req.hdr(), req.block(), req.generation());
  const absl::Time deadline = DeadlineOf(ctx);
  std::deque<std::unique_ptr<PullCall>> open;
  for (int i = 0; i < in_flight && plan->next < plan->pages; ++i) {
    open.push_back(std::make_unique<PullCall>(plan->pull_pages));
    plan->Start(open.back().get());
  }
  // Paces this block's pages; the runner paces the job across blocks.
  RateLimiter job_cap(req.bandwidth_bps(), absl::ZeroDuration());
  uint64_t bytes = 0;
  absl::Status s;
  while (s.ok() && !open.empty()) {
    std::unique_ptr<PullCall> p = std::move(open.front());
    open.pop_front();
    // A source that stopped answering (SIGSTOP, a partition) fails this
    // copy in seconds, not at the job's deadline: the runner tries another.
    p->waiter->WaitAll(std::min(deadline, absl::Now() + pull_timeout_));
    s = Annotate(p->call->status, "pull from " + req.source());
    uint64_t stored = 0;
    if (s.ok()) s = ApplyPull(store_, req, obj, *p, &stored);
    if (!s.ok()) break;
    bytes += stored;
    job_cap.Acquire(stored);
    node_cap_.Acquire(stored);
    if (ctx.IsCancelled()) s = absl::CancelledError("copy cancelled");
    if (s.ok() && plan->next < plan->pages) {
      plan->Start(p.get());
      open.push_back(std::move(p));
    }
  }
  // On a failure, pulls still open are cancelled; WaitAll returns when the
  // client no longer holds them (their buffers go with them).
  for (auto& p : open) p->waiter->WaitAll(absl::Now());
  if (!s.ok()) return s;
  return bytes;
}

grpc::Status CopyService::Objects(grpc::ServerContext* ctx, const pb::ObjectsRequest* req,
                                  pb::ObjectsResponse* resp) {
  if (absl::Status s = FromRegisteredNode(*ctx); !s.ok()) return ToGrpc(s);
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  if (req->blocks() > meta::kChunkBlocks) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrFormat(
        "objects of %d blocks asked for; at most %d at once", req->blocks(), meta::kChunkBlocks)));
  }
  // Within the disk, so first_block + blocks cannot wrap.
  const uint64_t nblocks = (g->size + g->block_size - 1) / g->block_size;
  if (req->first_block() > nblocks) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrFormat(
        "first block %d is past the disk's %d blocks", req->first_block(), nblocks)));
  }
  auto objects =
      store_->Objects(req->hdr().disk_id(), req->first_block(), req->first_block() + req->blocks());
  if (!objects.ok()) return ToGrpc(objects.status());
  for (const auto& o : *objects) {
    auto* r = resp->add_objects();
    r->set_block(o.block);
    r->set_generation(o.generation);
  }
  return grpc::Status::OK;
}

grpc::Status CopyService::Checksums(grpc::ServerContext* ctx, const pb::ChecksumsRequest* req,
                                    pb::ChecksumsResponse* resp) {
  if (absl::Status s = FromRegisteredNode(*ctx); !s.ok()) return ToGrpc(s);
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  absl::Status s = CheckObject(req->hdr().disk_id(), *g, req->block(), req->generation());
  if (!s.ok()) return ToGrpc(s);
  std::vector<uint32_t> crcs, bad;
  std::vector<bool> present;
  s = store_->VerifyPages({req->hdr().disk_id(), req->block(), req->generation()}, 0,
                          PagesInBlock(*g, req->block()), &crcs, &present, &bad);
  if (!s.ok()) return ToGrpc(s);
  resp->mutable_crcs()->Assign(crcs.begin(), crcs.end());
  std::string p(present.size(), '\0');
  for (size_t i = 0; i < present.size(); ++i) p[i] = present[i] ? 1 : 0;
  resp->set_present(std::move(p));
  resp->mutable_bad_pages()->Assign(bad.begin(), bad.end());
  return grpc::Status::OK;
}

grpc::Status CopyService::FinishObject(grpc::ServerContext* ctx, const pb::FinishObjectRequest* req,
                                       pb::FinishObjectResponse* resp) {
  if (absl::Status s = FromRegisteredNode(*ctx); !s.ok()) return ToGrpc(s);
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  const uint64_t disk = req->hdr().disk_id();
  std::map<uint64_t, std::optional<meta::VersionedChunk>> chunks;  // read once each
  for (const auto& o : req->objects()) {
    absl::Status s = CheckObject(disk, *g, o.block(), o.generation());
    if (!s.ok()) return ToGrpc(s);
    // The block table decides, whatever the caller believes: marks go only
    // once this node is a CLEAN replica (a syncing one still needs them), and
    // a replica ZooKeeper still counts on is never dropped.
    const uint64_t c = o.block() / meta::kChunkBlocks;
    if (!chunks.count(c)) {
      auto chunk = catalog_->ReadChunk(disk, c);
      if (!chunk.ok()) return ToGrpc(chunk.status());
      chunks[c] = std::move(*chunk);
    }
    pb::ReplicaState mine = pb::STALE;  // not listed: as good as stale
    if (chunks[c]) {
      const auto& ptr = chunks[c]->chunk.blocks(static_cast<int>(o.block() % meta::kChunkBlocks));
      const auto own = meta::OwnObjects(ptr);
      const bool referenced = std::find(own.begin(), own.end(), o.generation()) != own.end();
      for (const auto& r : ptr.replicas()) {
        if (r.node() == self_ && referenced) mine = r.state();
      }
    }
    const bool clear = req->what() == pb::FinishObjectRequest::CLEAR_MARKS;
    if (clear ? mine != pb::CLEAN : mine != pb::STALE) {
      resp->add_refused_blocks(o.block());
      continue;
    }
    const ObjectId obj = ObjectOf(req->hdr(), o.block(), o.generation());
    s = clear ? store_->ClearMarks(obj, g->block_size) : store_->DropObject(obj, g->block_size);
    if (!s.ok()) return ToGrpc(Annotate(s, absl::StrFormat("disk %d block %d", disk, o.block())));
  }
  if (req->what() == pb::FinishObjectRequest::DROP &&
      req->objects_size() > resp->refused_blocks_size()) {
    LOG_INFO("disk %d: dropped this node's replica of %d block(s)", disk,
             req->objects_size() - resp->refused_blocks_size());
  }
  return grpc::Status::OK;
}

// The whole block is pulled into memory first and stored in one batch under
// the block's lock, only if the object is still absent: a clone's first
// write (a whole-block write of the parent's data and its own) may land at
// any moment, and it must never be overwritten by the parent's bare data.
grpc::Status CopyService::Fill(grpc::ServerContext* ctx, const pb::FillRequest* req,
                               pb::FillResponse* resp) {
  if (absl::Status s = FromRegisteredNode(*ctx); !s.ok()) return ToGrpc(s);
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  absl::Status s = CheckObject(req->hdr().disk_id(), *g, req->block(), req->generation());
  if (!s.ok()) return ToGrpc(s);
  auto found = SourceFor(req->source(), req->source_io_address());
  if (!found.ok()) return ToGrpc(found.status());
  wire::WireClient* source = *found;
  const uint32_t pages = PagesInBlock(*g, req->block());
  std::vector<bool> present(pages, false);
  std::string data;
  RateLimiter pace(req->bandwidth_bps(), absl::ZeroDuration());
  std::unique_ptr<char[]> buf(new char[size_t{kMaxPullPages} * (kPage + 1)]);
  for (uint32_t first = 0; first < pages;) {
    const uint32_t n = std::min(kMaxPullPages, pages - first);
    pb::PullRequest pull;
    *pull.mutable_hdr() = req->source_hdr();
    pull.set_block(req->block());
    pull.set_generation(req->source_generation());
    pull.set_first_page(first);
    pull.set_pages(n);
    wire::WireCall call;
    call.method = wire::kPull;
    call.meta = pull.SerializeAsString();
    call.out = buf.get();
    call.out_cap = size_t{n} * (kPage + 1);
    wire::WireWaiter waiter;
    source->Start(&call, &waiter);
    waiter.WaitAll(std::min(DeadlineOf(*ctx), absl::Now() + pull_timeout_));
    if (!call.status.ok()) return ToGrpc(Annotate(call.status, "pull from " + req->source()));
    const size_t got = call.out_len;
    size_t stored = 0;
    if (got >= n) {
      for (uint32_t i = 0; i < n; ++i) stored += buf[got - n + i] != 0;
    }
    if (got < n || got - n != stored * kPage) {
      return ToGrpc(absl::DataLossError(absl::StrFormat(
          "pull from %s: a %d-byte reply for pages [%d, +%d)", req->source(), got, first, n)));
    }
    for (uint32_t i = 0; i < n; ++i) present[first + i] = buf[got - n + i] != 0;
    data.append(buf.get(), stored * kPage);
    pace.Acquire(stored * kPage);
    node_cap_.Acquire(stored * kPage);
    first += n;
  }
  auto filled =
      store_->FillIfEmpty(ObjectOf(req->hdr(), req->block(), req->generation()), present, data);
  if (!filled.ok()) return ToGrpc(filled.status());
  if (*filled) {
    s = store_->Sync();
    if (!s.ok()) return ToGrpc(s);
  }
  resp->set_bytes(*filled ? data.size() : 0);
  resp->set_already(!*filled);
  return grpc::Status::OK;
}

grpc::Status CopyService::Collect(grpc::ServerContext* ctx, const pb::CollectRequest* req,
                                  pb::CollectResponse* resp) {
  if (absl::Status s = FromRegisteredNode(*ctx); !s.ok()) return ToGrpc(s);
  auto n = CollectDisk(req->disk_id());
  if (!n.ok()) return ToGrpc(n.status());
  resp->set_objects_dropped(*n);
  return grpc::Status::OK;
}

// Safe against everything running at once because the set of objects the
// block table names, among blocks this node is listed for and generations
// below the spec's write generation (read first), only shrinks: new objects
// (copy-on-write, a clone's first write, a rollback) take the current
// generation or a later one, a relocation lists a node before it copies
// there, and pruning only removes. The fence makes sure no reader still
// works from a pointer older than the chunks read here.
absl::StatusOr<uint64_t> CopyService::CollectDisk(uint64_t disk) {
  auto spec = catalog_->GetSpec(disk);
  if (absl::IsNotFound(spec.status())) return 0;  // deleted: DropDisk's work
  RETURN_IF_ERROR(spec.status());
  RETURN_IF_ERROR(disks_->Fence(disk, spec->spec.layout_version(), absl::Seconds(30)));
  ASSIGN_OR_RETURN(auto objects, store_->Objects(disk, 0, UINT64_MAX));
  std::map<uint64_t, std::optional<meta::VersionedChunk>> chunks;
  uint64_t dropped = 0;
  for (const ObjectId& o : objects) {
    if (o.generation >= spec->spec.generation()) continue;
    const uint64_t c = o.block / meta::kChunkBlocks;
    if (!chunks.count(c)) {
      ASSIGN_OR_RETURN(chunks[c], catalog_->ReadChunk(disk, c));
    }
    if (!chunks[c]) continue;  // not this collector's to judge
    const auto& ptr = chunks[c]->chunk.blocks(static_cast<int>(o.block % meta::kChunkBlocks));
    bool listed = false;
    for (const auto& r : ptr.replicas()) listed = listed || r.node() == self_;
    const auto own = meta::OwnObjects(ptr);
    if (!listed || std::find(own.begin(), own.end(), o.generation) != own.end()) continue;
    RETURN_IF_ERROR(store_->DropObject(o, spec->spec.block_size()));
    ++dropped;
  }
  if (dropped > 0) LOG_INFO("disk %d: dropped %d object(s) nothing reads any more", disk, dropped);
  return dropped;
}

grpc::Status CopyService::Sync(grpc::ServerContext* ctx, const pb::FlushRequest*,
                               pb::FinishObjectResponse*) {
  if (absl::Status s = FromRegisteredNode(*ctx); !s.ok()) return ToGrpc(s);
  return ToGrpc(store_->Sync());
}

}  // namespace ukai::node
