// The NodeOps gRPC service: liveness pings, stats and dropping a deleted
// disk's data. (Block reads and writes: BlockIo, on their own transport.)
// Thread-safe; handlers run on gRPC's thread pool.
#ifndef UKAI_NODE_NODE_OPS_SERVICE_H_
#define UKAI_NODE_NODE_OPS_SERVICE_H_

#include "absl/time/time.h"
#include "node/block_store.h"
#include "node/disk_registry.h"
#include "ukai.grpc.pb.h"

namespace ukai::node {

class NodeOpsService final : public pb::NodeOps::Service {
 public:
  NodeOpsService(pb::NodeInfo self, DiskRegistry* disks, BlockStore* store)
      : self_(std::move(self)), disks_(disks), store_(store) {}

  grpc::Status Ping(grpc::ServerContext*, const pb::PingRequest*, pb::PingResponse*) override;
  // Test-only (ukai-node --test-site-delay-ms): pings from other sites are
  // answered this late, like the block I/O transport's replies.
  void SetOtherSiteDelay(absl::Duration d) { other_site_delay_ = d; }
  grpc::Status Stat(grpc::ServerContext*, const pb::StatRequest*, pb::StatResponse*) override;
  grpc::Status DropDisk(grpc::ServerContext*, const pb::DropDiskRequest*,
                        pb::DropDiskResponse*) override;

 private:
  const pb::NodeInfo self_;
  absl::Duration other_site_delay_;
  DiskRegistry* disks_;
  BlockStore* store_;
};

}  // namespace ukai::node

#endif  // UKAI_NODE_NODE_OPS_SERVICE_H_
