#include "control/grpc_node_peers.h"

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_format.h"

namespace ukai::control {
namespace {

// A block copy may take a while under a bandwidth limit; anything else is quick.
constexpr absl::Duration kCallTimeout = absl::Seconds(60);
constexpr absl::Duration kCopyTimeout = absl::Minutes(30);
// Objects is a hint (without it every block is copied): not worth a long wait.
constexpr absl::Duration kHintTimeout = absl::Seconds(10);

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
}

}  // namespace

absl::StatusOr<std::shared_ptr<GrpcNodePeers::Peer>> GrpcNodePeers::PeerOf(
    const std::string& node) {
  ASSIGN_OR_RETURN(auto nodes, catalog_->ListNodes());
  for (const auto& n : nodes) {
    if (n.id() != node) continue;
    absl::MutexLock l(&mu_);
    auto& p = peers_[node];
    if (!p || p->address != n.address() || p->io_address != n.io_address()) {
      p = std::make_shared<Peer>();
      p->address = n.address();
      p->io_address = n.io_address();
      auto ch = channels_(n.address());
      p->copy = pb::NodeCopy::NewStub(ch);
      p->data = pb::NodeOps::NewStub(ch);
    }
    return p;
  }
  return absl::NotFoundError("no node '" + node + "' in the catalog");
}

absl::Status GrpcNodePeers::Fence(const std::string& node, uint64_t disk, uint64_t layout) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::FenceRequest req;
  req.set_disk_id(disk);
  req.set_layout_version(layout);
  req.set_timeout_ms(30000);
  pb::FenceResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCallTimeout);
  return Annotate(FromGrpc(p->copy->Fence(&ctx, req, &resp)), "node " + node);
}

absl::StatusOr<uint64_t> GrpcNodePeers::Copy(const std::string& dst, const std::string& src,
                                             const pb::IoHeader& hdr, uint64_t block,
                                             uint64_t generation, uint64_t bandwidth_bps) {
  ASSIGN_OR_RETURN(auto d, PeerOf(dst));
  ASSIGN_OR_RETURN(auto s, PeerOf(src));
  pb::CopyBlockRequest req;
  *req.mutable_hdr() = hdr;
  req.set_block(block);
  req.set_generation(generation);
  req.set_source(src);
  req.set_source_io_address(s->io_address);
  req.set_bandwidth_bps(bandwidth_bps);
  pb::CopyBlockResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCopyTimeout);
  absl::Status st = FromGrpc(d->copy->CopyBlock(&ctx, req, &resp));
  if (!st.ok()) return Annotate(st, "node " + dst);
  return resp.bytes();
}

absl::StatusOr<std::vector<uint64_t>> GrpcNodePeers::Finish(
    const std::string& node, const pb::IoHeader& hdr, const std::vector<pb::ObjectRef>& objects,
    pb::FinishObjectRequest::What what) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::FinishObjectRequest req;
  *req.mutable_hdr() = hdr;
  req.set_what(what);
  for (const auto& o : objects) *req.add_objects() = o;
  pb::FinishObjectResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCallTimeout);
  RETURN_IF_ERROR(Annotate(FromGrpc(p->copy->FinishObject(&ctx, req, &resp)), "node " + node));
  return std::vector<uint64_t>(resp.refused_blocks().begin(), resp.refused_blocks().end());
}

absl::StatusOr<std::vector<pb::ObjectRef>> GrpcNodePeers::Objects(const std::string& node,
                                                                  const pb::IoHeader& hdr,
                                                                  uint64_t first, uint64_t n) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::ObjectsRequest req;
  *req.mutable_hdr() = hdr;
  req.set_first_block(first);
  req.set_blocks(n);
  pb::ObjectsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kHintTimeout);
  RETURN_IF_ERROR(Annotate(FromGrpc(p->copy->Objects(&ctx, req, &resp)), "node " + node));
  return std::vector<pb::ObjectRef>(resp.objects().begin(), resp.objects().end());
}

absl::StatusOr<pb::ChecksumsResponse> GrpcNodePeers::Checksums(const std::string& node,
                                                               const pb::IoHeader& hdr,
                                                               uint64_t block,
                                                               uint64_t generation) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::ChecksumsRequest req;
  *req.mutable_hdr() = hdr;
  req.set_block(block);
  req.set_generation(generation);
  pb::ChecksumsResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCallTimeout);
  RETURN_IF_ERROR(Annotate(FromGrpc(p->copy->Checksums(&ctx, req, &resp)), "node " + node));
  return resp;
}

absl::Status GrpcNodePeers::Sync(const std::string& node) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::FinishObjectResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCallTimeout);
  return Annotate(FromGrpc(p->copy->Sync(&ctx, pb::FlushRequest(), &resp)), "node " + node);
}

absl::StatusOr<uint64_t> GrpcNodePeers::Collect(const std::string& node, uint64_t disk) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::CollectRequest req;
  req.set_disk_id(disk);
  pb::CollectResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCallTimeout);
  RETURN_IF_ERROR(Annotate(FromGrpc(p->copy->Collect(&ctx, req, &resp)), "node " + node));
  return resp.objects_dropped();
}

absl::StatusOr<pb::FillResponse> GrpcNodePeers::Fill(const std::string& node,
                                                     const pb::FillRequest& req) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::FillResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCopyTimeout);
  RETURN_IF_ERROR(Annotate(FromGrpc(p->copy->Fill(&ctx, req, &resp)), "node " + node));
  return resp;
}

absl::Status GrpcNodePeers::CopyUp(const std::string& node, const pb::CopyUpRequest& req) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  wire::WireClient* io;
  {
    absl::MutexLock l(&p->io_mu);
    if (!p->io) p->io = std::make_unique<wire::WireClient>(p->io_address, io_);
    io = p->io.get();
  }
  wire::WireCall call;
  call.method = wire::kCopyUp;
  call.meta = req.SerializeAsString();
  wire::WireWaiter waiter;
  io->Start(&call, &waiter);
  waiter.WaitAll(absl::Now() + kCallTimeout);
  return Annotate(call.status, "node " + node);
}

absl::StatusOr<uint64_t> GrpcNodePeers::StoredBytes(const std::string& node, uint64_t disk) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::StatRequest req;
  pb::StatResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  RETURN_IF_ERROR(FromGrpc(p->data->Stat(&ctx, req, &resp)));
  auto it = resp.disk_bytes().find(disk);
  return it == resp.disk_bytes().end() ? 0 : it->second;
}

}  // namespace ukai::control
