// GrpcNodePeers: the NodePeers of a running cluster. It finds each node's
// addresses in the catalog and calls its NodeCopy and NodeOps services
// (and block I/O, for kCopyUp), with a deadline on every call. Thread-safe;
// stubs are made once per node address and kept.
#ifndef UKAI_CONTROL_GRPC_NODE_PEERS_H_
#define UKAI_CONTROL_GRPC_NODE_PEERS_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/channel.h"
#include "common/wire_client.h"
#include "control/node_peers.h"
#include "meta/catalog.h"
#include "ukai.grpc.pb.h"

namespace ukai::control {

class GrpcNodePeers final : public NodePeers {
 public:
  // `io`: how block I/O calls (CopyUp) reach nodes.
  GrpcNodePeers(meta::Catalog* catalog, ChannelFactory channels, wire::WireClientOptions io = {})
      : catalog_(catalog), channels_(std::move(channels)), io_(std::move(io)) {}
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
  absl::StatusOr<pb::FillResponse> Fill(const std::string& node,
                                        const pb::FillRequest& req) override;

 private:
  struct Peer {
    std::string address, io_address;
    std::unique_ptr<pb::NodeCopy::Stub> copy;
    std::unique_ptr<pb::NodeOps::Stub> data;
    absl::Mutex io_mu;
    std::unique_ptr<wire::WireClient> io ABSL_GUARDED_BY(io_mu);  // made on first use
  };
  absl::StatusOr<std::shared_ptr<Peer>> PeerOf(const std::string& node);
  meta::Catalog* catalog_;
  const ChannelFactory channels_;
  const wire::WireClientOptions io_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_GRPC_NODE_PEERS_H_
