// NodePeers: what the control plane asks of the storage nodes, by node id.
// The calls are the nodes' NodeCopy and NodeOps services (and block I/O
// kCopyUp); GrpcNodePeers (control/grpc_node_peers.h) makes them over the
// network, and tests make them to in-process nodes. Implementations are
// thread-safe: a job's copies run several at once.
#ifndef UKAI_CONTROL_NODE_PEERS_H_
#define UKAI_CONTROL_NODE_PEERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ukai.pb.h"

namespace ukai::control {

class NodePeers {
 public:
  virtual ~NodePeers() = default;
  // `node` turns away every request for `disk` under a layout older than
  // `layout`, and waits for those in flight.
  virtual absl::Status Fence(const std::string& node, uint64_t disk, uint64_t layout) = 0;
  // `dst` pulls the object from `src`; returns the bytes copied.
  virtual absl::StatusOr<uint64_t> Copy(const std::string& dst, const std::string& src,
                                        const pb::IoHeader& hdr, uint64_t block,
                                        uint64_t generation, uint64_t bandwidth_bps) = 0;
  // Clears marks of, or drops, objects of one disk on `node`; returns the
  // blocks the node refused because ZooKeeper says they must stay.
  virtual absl::StatusOr<std::vector<uint64_t>> Finish(const std::string& node,
                                                       const pb::IoHeader& hdr,
                                                       const std::vector<pb::ObjectRef>& objects,
                                                       pb::FinishObjectRequest::What what) = 0;
  // The objects of blocks [first, first + n) that hold data on `node`.
  virtual absl::StatusOr<std::vector<pb::ObjectRef>> Objects(const std::string& node,
                                                             const pb::IoHeader& hdr,
                                                             uint64_t first, uint64_t n) = 0;
  // Scrub: every page of one object on `node`, checked (ChecksumsResponse).
  virtual absl::StatusOr<pb::ChecksumsResponse> Checksums(const std::string& node,
                                                          const pb::IoHeader& hdr, uint64_t block,
                                                          uint64_t generation) = 0;
  // Makes what `node` stored durable.
  virtual absl::Status Sync(const std::string& node) = 0;
  // Bytes of `disk` stored on `node`, for the progress estimate.
  virtual absl::StatusOr<uint64_t> StoredBytes(const std::string& node, uint64_t disk) = 0;
  // `node` drops its objects of `disk` the block table no longer names
  // (pb::CollectRequest); returns how many.
  virtual absl::StatusOr<uint64_t> Collect(const std::string& node, uint64_t disk) = 0;
  // `node` fills a clone's object from an ancestor's (pb::FillRequest).
  virtual absl::StatusOr<pb::FillResponse> Fill(const std::string& node,
                                                const pb::FillRequest& req) = 0;
  // Block I/O kCopyUp on `node` (pb::CopyUpRequest): a rollback's copies.
  virtual absl::Status CopyUp(const std::string& node, const pb::CopyUpRequest& req) = 0;
};

// The header of a job's requests for disk `disk` under layout `layout`.
inline pb::IoHeader JobHeader(uint64_t disk, uint64_t layout) {
  pb::IoHeader h;
  h.set_disk_id(disk);
  h.set_layout_version(layout);
  return h;
}

}  // namespace ukai::control

#endif  // UKAI_CONTROL_NODE_PEERS_H_
