// For tests: a catalog on a fresh in-memory ZooKeeper tree, with nodes
// registered. Header-only; link ukai_meta.
#ifndef UKAI_META_MEM_CLUSTER_TESTING_H_
#define UKAI_META_MEM_CLUSTER_TESTING_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "meta/catalog.h"
#include "meta/meta_store.h"

namespace ukai::meta {

struct MemCluster {
  // Registers each (id, site) as a live node.
  explicit MemCluster(const std::vector<std::pair<std::string, std::string>>& nodes = {{"n1", "a"}})
      : tree(NewMemMetaTree()), store(NewMemMetaStore(tree)), catalog(store.get(), "/ukai") {
    ok = catalog.Init().ok();
    for (const auto& [id, site] : nodes) {
      pb::NodeInfo n;
      n.set_id(id);
      n.set_site(site);
      ok = ok && catalog.RegisterNode(n, pb::NodeLive()).ok();
    }
  }
  // A disk of `size` bytes with one replica.
  absl::StatusOr<pb::DiskSpec> CreateDisk(const std::string& name, uint64_t size) {
    pb::CreateDiskRequest r;
    r.set_name(name);
    r.set_size(size);
    r.mutable_placement()->set_replicas(1);
    return catalog.CreateDisk(r);
  }

  std::shared_ptr<MemMetaTree> tree;
  std::unique_ptr<MetaStore> store;
  Catalog catalog;
  bool ok = false;  // Init and every registration succeeded
};

}  // namespace ukai::meta

#endif  // UKAI_META_MEM_CLUSTER_TESTING_H_
