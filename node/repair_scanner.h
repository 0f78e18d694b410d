// RepairScanner: every node runs one. Every `interval` it looks for blocks
// whose replica on this node is STALE while a CLEAN replica is up (this node
// missed writes: it was down, stopped or cut off) and starts a repair job for
// each such disk (Catalog::StartRepair); whichever node's JobRunner claims
// the job copies only those blocks back (node/relocator.h). A disk with a
// job already running is looked at again on the next pass.
#ifndef UKAI_NODE_REPAIR_SCANNER_H_
#define UKAI_NODE_REPAIR_SCANNER_H_

#include <set>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "meta/catalog.h"

namespace ukai::node {

// Whether `chunk` has a block whose replica on `node` is STALE and that has a
// CLEAN replica on a `live` node to copy from.
bool NeedsRepair(const pb::BlockChunk& chunk, const std::string& node,
                 const std::set<std::string>& live);

class RepairScanner {
 public:
  RepairScanner(std::string self, meta::Catalog* catalog, absl::Duration interval)
      : self_(std::move(self)), catalog_(catalog), interval_(interval) {}
  ~RepairScanner() { Stop(); }
  void Start();  // no-op for a zero interval
  void Stop();
  // One pass; returns the disks it started repairs of.
  std::vector<std::string> ScanOnce();

 private:
  const std::string self_;
  meta::Catalog* catalog_;
  const absl::Duration interval_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace ukai::node

#endif  // UKAI_NODE_REPAIR_SCANNER_H_
