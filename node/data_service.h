// The NodeData gRPC service: liveness pings, stats and dropping a deleted
// disk's data. (Block reads and writes: BlockIo, on their own transport.)
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

  grpc::Status Ping(grpc::ServerContext*, const pb::PingRequest*, pb::PingResponse*) override;
  grpc::Status Stat(grpc::ServerContext*, const pb::StatRequest*, pb::StatResponse*) override;
  grpc::Status DropDisk(grpc::ServerContext*, const pb::DropDiskRequest*,
                        pb::DropDiskResponse*) override;

 private:
  const pb::NodeInfo self_;
  DiskRegistry* disks_;
  BlockStore* store_;
};

}  // namespace ukai::node

#endif  // UKAI_NODE_DATA_SERVICE_H_
