#include "node/data_service.h"

#include "absl/strings/str_format.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"

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

grpc::Status DataService::Write(grpc::ServerContext*, const pb::WriteRequest* req,
                                pb::WriteResponse*) {
  auto g = disks_->Admit(req->hdr(), /*write=*/true);
  if (!g.ok()) return ToGrpc(g.status());
  absl::Status s = CheckRange(req->hdr().disk_id(), *g, req->block(), req->offset(),
                              req->data().size());
  if (s.ok()) {
    s = store_->Write({req->hdr().disk_id(), req->block(), req->generation()}, req->offset(),
                      req->data());
  }
  return ToGrpc(s);
}

grpc::Status DataService::Read(grpc::ServerContext*, const pb::ReadRequest* req,
                               pb::ReadResponse* resp) {
  auto g = disks_->Admit(req->hdr(), /*write=*/false);
  if (!g.ok()) return ToGrpc(g.status());
  absl::Status s = CheckRange(req->hdr().disk_id(), *g, req->block(), req->offset(), req->length());
  if (s.ok()) {
    s = store_->Read({req->hdr().disk_id(), req->block(), req->generation()}, req->offset(),
                     req->length(), resp->mutable_data());
  }
  if (absl::IsDataLoss(s)) LOG_WARN("%s", s.ToString());  // the client reads another replica
  return ToGrpc(s);
}

grpc::Status DataService::Flush(grpc::ServerContext*, const pb::FlushRequest*,
                                pb::FlushResponse*) {
  return ToGrpc(store_->Sync());
}

grpc::Status DataService::Ping(grpc::ServerContext*, const pb::PingRequest*,
                               pb::PingResponse* resp) {
  resp->set_node(self_.id());
  resp->set_site(self_.site());
  return grpc::Status::OK;
}

grpc::Status DataService::Stat(grpc::ServerContext*, const pb::StatRequest*,
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

grpc::Status DataService::DropDisk(grpc::ServerContext*, const pb::DropDiskRequest* req,
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
