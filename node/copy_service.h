// The NodeCopy gRPC service: the node's half of background copies
// (relocation, repair, scrub, flatten, rollback). The control plane
// (control/, through NodePeers) drives it: it fences nodes at a layout
// version, asks a destination replica to pull an object from a source replica (over the
// block I/O transport's kPull, common/wire_format.h), then clears
// the destination's written-sector marks and drops replicas that moved away.
// docs/ARCHITECTURE.md, "Relocation", has the whole sequence.
// Thread-safe; handlers run on gRPC's thread pool.
#ifndef UKAI_NODE_COPY_SERVICE_H_
#define UKAI_NODE_COPY_SERVICE_H_

#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/rate_limiter.h"
#include "common/wire_client.h"
#include "meta/catalog.h"
#include "node/block_store.h"
#include "node/disk_registry.h"
#include "ukai.grpc.pb.h"

namespace ukai::node {

class CopyService final : public pb::NodeCopy::Service {
 public:
  // `node_cap_bps`: all copies into this node together (0: no cap).
  // `pull_timeout`: how long one pull may wait for the source's reply; a
  // source that stops answering fails the copy then, and the runner tries
  // another source.
  // `io`: how pulls reach other nodes (same-host sockets, security).
  CopyService(std::string self, meta::Catalog* catalog, DiskRegistry* disks, BlockStore* store,
              uint64_t node_cap_bps, absl::Duration pull_timeout = absl::Seconds(30),
              wire::WireClientOptions io = {})
      : self_(std::move(self)),
        catalog_(catalog),
        disks_(disks),
        store_(store),
        node_cap_(node_cap_bps),
        pull_timeout_(pull_timeout),
        io_(std::move(io)) {}

  grpc::Status Fence(grpc::ServerContext*, const pb::FenceRequest*, pb::FenceResponse*) override;
  grpc::Status CopyBlock(grpc::ServerContext*, const pb::CopyBlockRequest*,
                         pb::CopyBlockResponse*) override;
  grpc::Status Objects(grpc::ServerContext*, const pb::ObjectsRequest*,
                       pb::ObjectsResponse*) override;
  grpc::Status FinishObject(grpc::ServerContext*, const pb::FinishObjectRequest*,
                            pb::FinishObjectResponse*) override;
  grpc::Status Checksums(grpc::ServerContext*, const pb::ChecksumsRequest*,
                         pb::ChecksumsResponse*) override;
  grpc::Status Sync(grpc::ServerContext*, const pb::FlushRequest*,
                    pb::FinishObjectResponse*) override;
  grpc::Status Collect(grpc::ServerContext*, const pb::CollectRequest*,
                       pb::CollectResponse*) override;
  grpc::Status Fill(grpc::ServerContext*, const pb::FillRequest*, pb::FillResponse*) override;
  // Collect's work, also run by the node's own periodic pass.
  absl::StatusOr<uint64_t> CollectDisk(uint64_t disk);

 private:
  struct PullPlan;
  // Pulls every page `plan` names, `in_flight` pulls at a time, into the
  // object; the bytes stored.
  absl::StatusOr<uint64_t> Pull(const grpc::ServerContext& ctx, PullPlan* plan, int in_flight);
  // CopyBlock's work, on a background-priority thread.
  grpc::Status Copy(grpc::ServerContext* ctx, const pb::CopyBlockRequest* req,
                    pb::CopyBlockResponse* resp);
  // One connection per source node, kept for every later copy.
  wire::WireClient* ClientFor(const std::string& io_address);
  // The client for copy source `node`, at its registered block I/O address
  // (re-read from the catalog when unknown or not `claimed`): a request
  // cannot send the node's pulls anywhere else. FAILED_PRECONDITION for a
  // node not registered, PERMISSION_DENIED for a claimed address not its.
  absl::StatusOr<wire::WireClient*> SourceFor(const std::string& node, const std::string& claimed);
  // `node`'s registered block I/O address ("" if none), re-read from the
  // catalog when unknown or not `claimed` (when given).
  std::string RegisteredAddress(const std::string& node, const std::string& claimed);
  // Every call comes from a node the catalog lists (a node certificate alone
  // is not enough: one issued for a node never started, or removed, is
  // refused). OK on a plaintext server.
  absl::Status FromRegisteredNode(const grpc::ServerContextBase& ctx);

  const std::string self_;
  meta::Catalog* catalog_;
  DiskRegistry* disks_;
  BlockStore* store_;
  RateLimiter node_cap_;
  const absl::Duration pull_timeout_;
  const wire::WireClientOptions io_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<wire::WireClient>> clients_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> registered_ ABSL_GUARDED_BY(mu_);  // node -> io address
};

}  // namespace ukai::node

#endif  // UKAI_NODE_COPY_SERVICE_H_
