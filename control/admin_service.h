// The Admin gRPC service every node serves: the cluster's control plane for
// ukaictl and cloud controllers. It changes only the catalog (ZooKeeper) and
// asks nodes for their stats; it never holds disk data. Thread-safe.
#ifndef UKAI_CONTROL_ADMIN_SERVICE_H_
#define UKAI_CONTROL_ADMIN_SERVICE_H_

#include <map>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "common/channel.h"
#include "common/executor.h"
#include "control/node_peers.h"
#include "meta/catalog.h"
#include "ukai.grpc.pb.h"

namespace ukai::control {

class AdminService final : public pb::Admin::Service {
 public:
  // `nodes` (may be null in tests) fences and collects on other nodes;
  // `executor` (may be null: one call at a time) asks them all at once;
  // `channels` (may be empty in tests: no node's statistics) reach nodes for
  // their statistics.
  explicit AdminService(meta::Catalog* catalog, NodePeers* nodes = nullptr,
                        Executor* executor = nullptr, ChannelFactory channels = {})
      : catalog_(catalog), nodes_(nodes), executor_(executor), channels_(std::move(channels)) {}
  // What `job list` reports of how long finished jobs are kept.
  void set_job_retention(meta::JobRetention r) { retention_ = r; }

  grpc::Status ListNodes(grpc::ServerContext*, const pb::ListNodesRequest*,
                         pb::ListNodesResponse*) override;
  grpc::Status CreateDisk(grpc::ServerContext*, const pb::CreateDiskRequest*,
                          pb::DiskInfo*) override;
  grpc::Status ListDisks(grpc::ServerContext*, const pb::ListDisksRequest*,
                         pb::ListDisksResponse*) override;
  grpc::Status GetDisk(grpc::ServerContext*, const pb::DiskRequest*, pb::DiskInfo*) override;
  grpc::Status ResizeDisk(grpc::ServerContext*, const pb::ResizeDiskRequest*,
                          pb::DiskInfo*) override;
  grpc::Status DeleteDisk(grpc::ServerContext*, const pb::DiskRequest*, pb::DiskInfo*) override;
  grpc::Status SetPolicy(grpc::ServerContext*, const pb::SetPolicyRequest*, pb::DiskInfo*) override;
  grpc::Status Relocate(grpc::ServerContext*, const pb::RelocateRequest*, pb::JobRecord*) override;
  grpc::Status Repair(grpc::ServerContext*, const pb::RepairRequest*, pb::JobRecord*) override;
  grpc::Status Scrub(grpc::ServerContext*, const pb::RepairRequest*, pb::JobRecord*) override;
  grpc::Status DrainNode(grpc::ServerContext*, const pb::NodeRequest*, pb::NodeStatus*) override;
  grpc::Status RemoveNode(grpc::ServerContext*, const pb::NodeRequest*, pb::NodeStatus*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const pb::ListJobsRequest*,
                        pb::ListJobsResponse*) override;
  grpc::Status GetJob(grpc::ServerContext*, const pb::JobRequest*, pb::JobRecord*) override;
  grpc::Status CancelJob(grpc::ServerContext*, const pb::JobRequest*, pb::JobRecord*) override;
  // control/admin_snapshots.cc
  grpc::Status CreateSnapshot(grpc::ServerContext*, const pb::SnapshotRequest*,
                              pb::CreateSnapshotResponse*) override;
  grpc::Status ListSnapshots(grpc::ServerContext*, const pb::DiskRequest*,
                             pb::ListSnapshotsResponse*) override;
  grpc::Status DeleteSnapshot(grpc::ServerContext*, const pb::SnapshotRequest*,
                              pb::SnapshotInfo*) override;
  grpc::Status Clone(grpc::ServerContext*, const pb::CloneRequest*, pb::DiskInfo*) override;
  grpc::Status Rollback(grpc::ServerContext*, const pb::SnapshotRequest*, pb::DiskInfo*) override;
  grpc::Status Flatten(grpc::ServerContext*, const pb::RepairRequest*, pb::JobRecord*) override;

 private:
  struct NodeStat {
    pb::NodeInfo info;
    bool live = false;
    absl::StatusOr<pb::StatResponse> stat = absl::UnavailableError("not asked");
  };
  // Every registered node with, for the live ones, their Stat (asked in parallel).
  absl::StatusOr<std::vector<NodeStat>> StatNodes();
  absl::Status FillDiskInfo(const pb::DiskSpec& spec, pb::DiskInfo* info);
  // Block replicas listed per node, over every disk (a scan of all block tables).
  absl::StatusOr<std::map<std::string, uint64_t>> ReplicaBlocks();
  absl::Status FillReadsFrom(const pb::DiskSpec& spec, const std::string& site, pb::DiskInfo* info);
  // site -> node -> median RTT (us) that site's frontends published.
  using SiteRtt = std::map<std::string, std::map<std::string, uint32_t>>;
  absl::StatusOr<SiteRtt> RttBySite();
  pb::NodeOps::Stub* Stub(const std::string& address);
  absl::StatusOr<std::vector<pb::SnapshotInfo>> SnapshotInfos(const pb::DiskSpec& spec);

  meta::Catalog* catalog_;
  meta::JobRetention retention_;
  NodePeers* nodes_;
  Executor* executor_;
  const ChannelFactory channels_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<pb::NodeOps::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_ADMIN_SERVICE_H_
