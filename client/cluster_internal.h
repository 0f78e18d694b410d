// Inside libukai: a Cluster over a given MetaStore whose nodes are reached
// through `channels` (in-process channels in the unit tests) and their block
// I/O over TCP made secure by `wire` (null: plaintext).
#ifndef UKAI_CLIENT_CLUSTER_INTERNAL_H_
#define UKAI_CLIENT_CLUSTER_INTERNAL_H_

#include "client/include/ukai/cluster.h"
#include "client/node_pool.h"
#include "common/wire_stream.h"
#include "meta/meta_store.h"

namespace ukai::client {
absl::StatusOr<std::unique_ptr<Cluster>> ConnectCluster(
    const ClusterOptions& opts, std::unique_ptr<meta::MetaStore> store, ChannelFactory channels,
    std::shared_ptr<wire::WireSecurity> wire = nullptr);
}  // namespace ukai::client

#endif  // UKAI_CLIENT_CLUSTER_INTERNAL_H_
