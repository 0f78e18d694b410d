// NodePool (internal to libukai): the nodes of the cluster, a gRPC channel
// and a block I/O connection to each, liveness from ZooKeeper and round-trip
// time measured by a pinger thread.
// Orders replicas for reads: same site first, then lowest RTT. Thread-safe.
#ifndef UKAI_CLIENT_NODE_POOL_H_
#define UKAI_CLIENT_NODE_POOL_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/channel.h"
#include "common/lifetime.h"
#include "common/wire_client.h"
#include "meta/catalog.h"
#include "ukai.grpc.pb.h"

namespace ukai::client {

// Makes the channel to a node's address (MakeChannel in production,
// in-process channels in tests).

class NodePool {
 public:
  // `io` configures every block I/O connection (send time limit: the RPC timeout).
  // `host`: this frontend's name; its RTT measurements are published in
  // ZooKeeper under it (FrontendRecord) for `ukaictl node list`.
  NodePool(meta::Catalog* catalog, std::string my_site, std::string host, ChannelFactory channels,
           wire::WireClientOptions io);
  ~NodePool();

  // Reads the node list (and arms watches); starts the pinger.
  absl::Status Start();
  // The block I/O client of node `id` (shared: it stays valid while the
  // caller holds it, even if the node moves). NOT_FOUND naming the node, or
  // UNAVAILABLE when the node publishes no block I/O address.
  absl::StatusOr<std::shared_ptr<wire::WireClient>> Io(const std::string& id);
  // `ids` ordered for reading: same site first, then measured RTT.
  std::vector<std::string> ReadOrder(std::vector<std::string> ids);
  std::vector<pb::NodeInfo> LiveNodes();
  const std::string& my_site() const { return my_site_; }

 private:
  struct Node {
    pb::NodeInfo info;
    bool live = false;
    double rtt_us = 1e6;  // unknown until measured
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<pb::NodeOps::Stub> stub;  // shared: the pinger holds it unlocked
    std::shared_ptr<wire::WireClient> io;
  };
  absl::Status WatchLive();
  absl::Status WatchNodes();
  absl::Status Reload();  // reads nodes and liveness (no watches)
  void PingLoop();
  // One ping of node `id`, folded into its RTT. A ping that had to connect
  // first (a TLS handshake is several round trips) is not a sample.
  void PingOne(const std::string& id, grpc::Channel* channel, pb::NodeOps::Stub* stub);
  void Publish();

  meta::Catalog* catalog_;
  const std::string my_site_;
  const std::string host_;
  const ChannelFactory channels_;
  const wire::WireClientOptions io_options_;
  absl::Mutex mu_;
  std::map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  LifetimeGuard guard_;
  std::thread pinger_;
};

}  // namespace ukai::client

#endif  // UKAI_CLIENT_NODE_POOL_H_
