#include "node/node_ops_service.h"

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"

namespace ukai::node {

grpc::Status NodeOpsService::Ping(grpc::ServerContext*, const pb::PingRequest* req,
                                  pb::PingResponse* resp) {
  if (other_site_delay_ > absl::ZeroDuration() && !req->site().empty() &&
      req->site() != self_.site()) {
    absl::SleepFor(other_site_delay_);
  }
  resp->set_node(self_.id());
  resp->set_site(self_.site());
  return grpc::Status::OK;
}

grpc::Status NodeOpsService::Stat(grpc::ServerContext*, const pb::StatRequest*,
                                  pb::StatResponse* resp) {
  resp->set_node(self_.id());
  resp->set_site(self_.site());
  resp->set_capacity_bytes(self_.capacity_bytes());
  auto bytes = store_->DiskBytes();
  if (!bytes.ok()) return ToGrpc(bytes.status());
  uint64_t used = 0;
  for (const auto& [disk, b] : *bytes) {
    (*resp->mutable_disk_bytes())[disk] = b;
    used += b;
  }
  resp->set_used_bytes(used);
  return grpc::Status::OK;
}

grpc::Status NodeOpsService::DropDisk(grpc::ServerContext*, const pb::DropDiskRequest* req,
                                      pb::DropDiskResponse*) {
  auto exists = disks_->Exists(req->disk_id());
  if (!exists.ok()) return ToGrpc(exists.status());
  if (*exists) {
    return ToGrpc(absl::FailedPreconditionError(
        absl::StrFormat("disk %d still exists; delete it in the catalog first", req->disk_id())));
  }
  return ToGrpc(store_->DropDisk(req->disk_id()));
}

}  // namespace ukai::node
