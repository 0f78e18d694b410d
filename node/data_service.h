// The NodeData gRPC service: block reads and writes admitted by the
// DiskRegistry and checked against the disk's geometry, flush, and stats.
// Thread-safe; handlers run on gRPC's thread pool.
#ifndef UKAI_NODE_DATA_SERVICE_H_
#define UKAI_NODE_DATA_SERVICE_H_

#include "node/block_store.h"
#include "node/disk_registry.h"
#include "ukai.grpc.pb.h"

namespace ukai::node {

class DataService final : public pb::NodeData::Service {
 public:
  DataService(pb::NodeInfo self, DiskRegistry* disks, BlockStore* store)
      : self_(std::move(self)), disks_(disks), store_(store) {}

  grpc::Status Write(grpc::ServerContext*, const pb::WriteRequest*, pb::WriteResponse*) override;
  grpc::Status Read(grpc::ServerContext*, const pb::ReadRequest*, pb::ReadResponse*) override;
  grpc::Status Flush(grpc::ServerContext*, const pb::FlushRequest*, pb::FlushResponse*) override;
  grpc::Status Ping(grpc::ServerContext*, const pb::PingRequest*, pb::PingResponse*) override;
  grpc::Status Stat(grpc::ServerContext*, const pb::StatRequest*, pb::StatResponse*) override;
  grpc::Status DropDisk(grpc::ServerContext*, const pb::DropDiskRequest*,
                        pb::DropDiskResponse*) override;

 private:
  const pb::NodeInfo self_;
  DiskRegistry* disks_;
  BlockStore* store_;
};

// Checks that [offset, offset+len) of `block` lies inside the block and the
// disk. INVALID_ARGUMENT / OUT_OF_RANGE naming the disk and block.
absl::Status CheckRange(uint64_t disk, const DiskGeometry& g, uint64_t block, uint64_t offset,
                        uint64_t len);

}  // namespace ukai::node

#endif  // UKAI_NODE_DATA_SERVICE_H_
