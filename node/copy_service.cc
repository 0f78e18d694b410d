#include "node/copy_service.h"

#include <optional>

#include "absl/strings/str_format.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/layout.h"
#include "node/block_io.h"

namespace ukai::node {
namespace {

constexpr uint32_t kPage = meta::kPageSize;

ObjectId ObjectOf(const pb::IoHeader& h, uint64_t block, uint64_t generation) {
  return {h.disk_id(), block, generation};
}

// The object must lie inside the disk: the block index and the generation.
absl::Status CheckObject(const pb::IoHeader& h, const DiskGeometry& g, uint64_t block,
                         uint64_t generation) {
  RETURN_IF_ERROR(CheckRange(h.disk_id(), g, block, 0, 1));
  return CheckGeneration(generation);
}

}  // namespace

grpc::Status CopyService::Fence(grpc::ServerContext*, const pb::FenceRequest* req,
                                pb::FenceResponse*) {
  absl::Duration timeout = absl::Milliseconds(req->timeout_ms() ? req->timeout_ms() : 30000);
  return ToGrpc(disks_->Fence(req->disk_id(), req->layout_version(), timeout));
}

grpc::Status CopyService::Pull(grpc::ServerContext* ctx, const pb::PullRequest* req,
                               grpc::ServerWriter<pb::PullChunk>* out) {
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  absl::Status s = CheckObject(req->hdr(), *g, req->block(), req->generation());
  if (!s.ok()) return ToGrpc(s);
  const ObjectId obj = ObjectOf(req->hdr(), req->block(), req->generation());
  // The last block of a disk may be short; whole pages either way.
  const uint64_t start = req->block() * g->block_size;
  const uint64_t len = std::min<uint64_t>(g->block_size, g->size - start);
  const uint32_t pages = static_cast<uint32_t>((len + kPage - 1) / kPage);
  std::vector<bool> present;
  pb::PullChunk chunk;
  for (uint32_t first = 0; first < pages; first += kPullPages) {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "pull cancelled");
    const uint32_t n = std::min(kPullPages, pages - first);
    s = store_->ReadPages(obj, first, n, &present, chunk.mutable_data());
    if (!s.ok()) return ToGrpc(Annotate(s, "pull"));
    if (chunk.data().empty()) continue;  // nothing stored here: thin stays thin
    chunk.set_first_page(first);
    std::string* flags = chunk.mutable_present();
    flags->assign(n, '\0');
    for (uint32_t i = 0; i < n; ++i) (*flags)[i] = present[i] ? 1 : 0;
    if (!out->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "puller went away");
  }
  return grpc::Status::OK;
}

std::shared_ptr<pb::NodeCopy::Stub> CopyService::StubFor(const std::string& address) {
  absl::MutexLock l(&mu_);
  auto& stub = stubs_[address];
  if (!stub) stub = pb::NodeCopy::NewStub(channels_(address));
  return stub;
}

grpc::Status CopyService::CopyBlock(grpc::ServerContext* ctx, const pb::CopyBlockRequest* req,
                                    pb::CopyBlockResponse* resp) {
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  absl::Status s = CheckObject(req->hdr(), *g, req->block(), req->generation());
  if (!s.ok()) return ToGrpc(s);
  const ObjectId obj = ObjectOf(req->hdr(), req->block(), req->generation());
  pb::PullRequest pull;
  *pull.mutable_hdr() = req->hdr();
  pull.set_block(req->block());
  pull.set_generation(req->generation());
  grpc::ClientContext call;
  call.set_deadline(ctx->deadline());
  auto reader = StubFor(req->source_address())->Pull(&call, pull);
  // Paces this block's pages; the runner paces the job across blocks.
  RateLimiter job_cap(req->bandwidth_bps(), absl::ZeroDuration());
  pb::PullChunk chunk;
  uint64_t bytes = 0;
  std::vector<bool> present;
  while (reader->Read(&chunk)) {
    if (ctx->IsCancelled()) {
      call.TryCancel();
      break;
    }
    present.assign(chunk.present().size(), false);
    for (size_t i = 0; i < present.size(); ++i) present[i] = chunk.present()[i] != 0;
    if (chunk.present().size() > kPullPages ||
        static_cast<uint64_t>(chunk.first_page()) + present.size() >
            (static_cast<uint64_t>(g->block_size) + kPage - 1) / kPage) {
      call.TryCancel();
      (void)reader->Finish();
      return ToGrpc(absl::DataLossError(absl::StrFormat(
          "pull from %s: pages [%d, +%d) outside the block", req->source(), chunk.first_page(),
          present.size())));
    }
    s = store_->ApplyPulled(obj, chunk.first_page(), present, chunk.data());
    if (!s.ok()) {
      call.TryCancel();
      (void)reader->Finish();
      return ToGrpc(Annotate(s, "storing pages pulled from " + req->source()));
    }
    bytes += chunk.data().size();
    job_cap.Acquire(chunk.data().size());
    node_cap_.Acquire(chunk.data().size());
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) {
    return ToGrpc(Annotate(FromGrpc(st), "pull from " + req->source()));
  }
  resp->set_bytes(bytes);
  return grpc::Status::OK;
}

grpc::Status CopyService::FinishObject(grpc::ServerContext*, const pb::FinishObjectRequest* req,
                                       pb::FinishObjectResponse* resp) {
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  const uint64_t disk = req->hdr().disk_id();
  std::map<uint64_t, std::optional<meta::VersionedChunk>> chunks;  // read once each
  for (const auto& o : req->objects()) {
    absl::Status s = CheckObject(req->hdr(), *g, o.block(), o.generation());
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
      for (const auto& r : ptr.replicas()) {
        if (r.node() == self_ && ptr.generation() == o.generation()) mine = r.state();
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
  if (req->what() == pb::FinishObjectRequest::DROP && req->objects_size() > resp->refused_blocks_size()) {
    LOG_INFO("disk %d: dropped this node's replica of %d block(s)", disk,
             req->objects_size() - resp->refused_blocks_size());
  }
  return grpc::Status::OK;
}

grpc::Status CopyService::Sync(grpc::ServerContext*, const pb::FlushRequest*,
                               pb::FinishObjectResponse*) {
  return ToGrpc(store_->Sync());
}

}  // namespace ukai::node
