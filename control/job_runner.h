// JobRunner: every node runs one. It claims jobs nobody runs (an ephemeral
// <root>/jobs/<id>/runner znode, so a job whose runner died is claimed again
// once ZooKeeper notices) and runs each on a thread of its own until it
// ends. GrpcCopyNodes is the CopyNodes a runner uses: the NodeCopy and
// NodeData services of the other nodes, found in ZooKeeper.
#ifndef UKAI_NODE_JOB_RUNNER_H_
#define UKAI_NODE_JOB_RUNNER_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/channel.h"
#include "common/wire_client.h"
#include "meta/catalog.h"
#include "node/relocator.h"
#include "ukai.grpc.pb.h"

namespace ukai::node {

class GrpcCopyNodes : public CopyNodes {
 public:
  explicit GrpcCopyNodes(meta::Catalog* catalog, ChannelFactory channels = MakeChannel)
      : catalog_(catalog), channels_(std::move(channels)) {}
  absl::Status Fence(const std::string& node, uint64_t disk, uint64_t layout) override;
  absl::StatusOr<uint64_t> Copy(const std::string& dst, const std::string& src,
                                const pb::IoHeader& hdr, uint64_t block, uint64_t generation,
                                uint64_t bandwidth_bps) override;
  absl::StatusOr<std::vector<uint64_t>> Finish(const std::string& node, const pb::IoHeader& hdr,
                                               const std::vector<pb::ObjectRef>& objects,
                                               pb::FinishObjectRequest::What what) override;
  absl::Status Sync(const std::string& node) override;
  absl::StatusOr<pb::ChecksumsResponse> Checksums(const std::string& node, const pb::IoHeader& hdr,
                                                  uint64_t block, uint64_t generation) override;
  absl::StatusOr<std::vector<pb::ObjectRef>> Objects(const std::string& node,
                                                     const pb::IoHeader& hdr, uint64_t first,
                                                     uint64_t n) override;
  absl::StatusOr<uint64_t> StoredBytes(const std::string& node, uint64_t disk) override;
  absl::StatusOr<uint64_t> Collect(const std::string& node, uint64_t disk) override;
  absl::Status CopyUp(const std::string& node, const pb::CopyUpRequest& req) override;
  absl::StatusOr<pb::FillResponse> Fill(const std::string& node, const pb::FillRequest& req) override;

 private:
  struct Peer {
    std::string address, io_address;
    std::unique_ptr<pb::NodeCopy::Stub> copy;
    std::unique_ptr<pb::NodeData::Stub> data;
    std::unique_ptr<wire::WireClient> io;  // block I/O, made on first use
    absl::Mutex io_mu;
  };
  absl::StatusOr<std::shared_ptr<Peer>> PeerOf(const std::string& node);
  meta::Catalog* catalog_;
  const ChannelFactory channels_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
};

class JobRunner {
 public:
  JobRunner(std::string self, meta::Catalog* catalog, CopyNodes* nodes,
            RelocatorOptions opts = {})
      : self_(std::move(self)), catalog_(catalog), nodes_(nodes), opts_(std::move(opts)) {}
  ~JobRunner() { Stop(); }
  void Start();
  // Stops claiming, asks running jobs to stop at their next step (they stay
  // RUNNING in ZooKeeper for another node) and waits for them.
  void Stop();

 private:
  void Loop();
  void Claim(const pb::JobRecord& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Still ours: not stopping, and the runner znode still names this node.
  bool ShouldStop(const std::string& id);

  const std::string self_;
  meta::Catalog* catalog_;
  CopyNodes* nodes_;
  const RelocatorOptions opts_;
  absl::Notification stopping_;
  std::thread loop_;
  absl::Mutex mu_;
  struct Running {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ukai::node

#endif  // UKAI_NODE_JOB_RUNNER_H_
