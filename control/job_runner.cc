#include "node/job_runner.h"

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"
#include "common/wire_format.h"

namespace ukai::node {
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

absl::StatusOr<std::shared_ptr<GrpcCopyNodes::Peer>> GrpcCopyNodes::PeerOf(const std::string& node) {
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
      p->data = pb::NodeData::NewStub(ch);
    }
    return p;
  }
  return absl::NotFoundError("no node '" + node + "' in the catalog");
}

absl::Status GrpcCopyNodes::Fence(const std::string& node, uint64_t disk, uint64_t layout) {
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

absl::StatusOr<uint64_t> GrpcCopyNodes::Copy(const std::string& dst, const std::string& src,
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

absl::StatusOr<std::vector<uint64_t>> GrpcCopyNodes::Finish(
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

absl::StatusOr<std::vector<pb::ObjectRef>> GrpcCopyNodes::Objects(const std::string& node,
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

absl::StatusOr<pb::ChecksumsResponse> GrpcCopyNodes::Checksums(const std::string& node,
                                                                const pb::IoHeader& hdr,
                                                                uint64_t block, uint64_t generation) {
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

absl::Status GrpcCopyNodes::Sync(const std::string& node) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::FinishObjectResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCallTimeout);
  return Annotate(FromGrpc(p->copy->Sync(&ctx, pb::FlushRequest(), &resp)), "node " + node);
}

absl::StatusOr<uint64_t> GrpcCopyNodes::Collect(const std::string& node, uint64_t disk) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::CollectRequest req;
  req.set_disk_id(disk);
  pb::CollectResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCallTimeout);
  RETURN_IF_ERROR(Annotate(FromGrpc(p->copy->Collect(&ctx, req, &resp)), "node " + node));
  return resp.objects_dropped();
}

absl::StatusOr<pb::FillResponse> GrpcCopyNodes::Fill(const std::string& node,
                                                     const pb::FillRequest& req) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::FillResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kCopyTimeout);
  RETURN_IF_ERROR(Annotate(FromGrpc(p->copy->Fill(&ctx, req, &resp)), "node " + node));
  return resp;
}

absl::Status GrpcCopyNodes::CopyUp(const std::string& node, const pb::CopyUpRequest& req) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  wire::WireClient* io;
  {
    absl::MutexLock l(&p->io_mu);
    if (!p->io) p->io = std::make_unique<wire::WireClient>(p->io_address, wire::WireClientOptions());
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

absl::StatusOr<uint64_t> GrpcCopyNodes::StoredBytes(const std::string& node, uint64_t disk) {
  ASSIGN_OR_RETURN(auto p, PeerOf(node));
  pb::StatRequest req;
  pb::StatResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  RETURN_IF_ERROR(FromGrpc(p->data->Stat(&ctx, req, &resp)));
  auto it = resp.disk_bytes().find(disk);
  return it == resp.disk_bytes().end() ? 0 : it->second;
}

void JobRunner::Start() {
  loop_ = std::thread([this] { Loop(); });
}

void JobRunner::Stop() {
  if (stopping_.HasBeenNotified()) return;
  stopping_.Notify();
  if (loop_.joinable()) loop_.join();
  std::map<std::string, Running> running;
  {
    absl::MutexLock l(&mu_);
    running.swap(running_);
  }
  for (auto& [id, r] : running) {
    r.thread.join();
    (void)catalog_->store().Delete(catalog_->paths().job_runner(id));
  }
}

bool JobRunner::ShouldStop(const std::string& id) {
  if (stopping_.HasBeenNotified()) return true;
  auto v = catalog_->store().Get(catalog_->paths().job_runner(id));
  // Lost (session expired, someone else claimed it): let go at once.
  if (v.ok() && v->data != self_) return true;
  return absl::IsNotFound(v.status());
}

void JobRunner::Loop() {
  do {
    auto jobs = catalog_->ListJobs();
    absl::MutexLock l(&mu_);
    // Reap jobs that ended.
    for (auto it = running_.begin(); it != running_.end();) {
      if (*it->second.done) {
        it->second.thread.join();
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    if (jobs.ok()) {
      for (const auto& j : *jobs) {
        if (j.state() == pb::JobRecord::RUNNING && !running_.count(j.id())) Claim(j);
      }
    }
  } while (!stopping_.WaitForNotificationWithTimeout(absl::Seconds(1)));
}

void JobRunner::Claim(const pb::JobRecord& job) {
  auto c = catalog_->store().Create(catalog_->paths().job_runner(job.id()), self_,
                                    meta::CreateMode::kEphemeral);
  if (!c.ok()) return;  // someone runs it (ALREADY_EXISTS), or ZooKeeper is away
  LOG_INFO("job %s: claimed", job.id());
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::string id = job.id();
  running_[id].done = done;
  running_[id].thread = std::thread([this, id, done] {
    Relocator r(self_, catalog_, nodes_, opts_);
    absl::Status s = r.Run(id, [this, id] { return ShouldStop(id); });
    if (!s.ok()) LOG_WARN("job %s: stopped: %s", id, s.ToString());
    // Released whether it ended or stopped: another node may go on.
    (void)catalog_->store().Delete(catalog_->paths().job_runner(id));
    *done = true;
  });
}

}  // namespace ukai::node
