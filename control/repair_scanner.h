// RepairScanner: every node runs one. Every `interval` it
//  - notes in ZooKeeper when a registered node was first seen down (and
//    clears that once it is up again): NodeState.down_since_ms;
//  - decides which nodes' replicas must move: those draining (`ukaictl node
//    drain`) and those down for longer than `grace`;
//  - starts a repair job (Catalog::StartRepair) for each disk with a block
//    PlanRepair (control/repair_plan.h) finds work for: a stale replica on a live
//    node to catch up, or a replica on a leaving node to rebuild elsewhere.
//    Its copy rate is capped at `bandwidth_bps` (0: none).
// Every node scans; the one-job-per-disk marker makes the first start win,
// and a disk with a job running (a relocation, say) is looked at again on a
// later pass.
#ifndef UKAI_CONTROL_REPAIR_SCANNER_H_
#define UKAI_CONTROL_REPAIR_SCANNER_H_

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "meta/catalog.h"

namespace ukai::control {

class RepairScanner {
 public:
  RepairScanner(std::string self, meta::Catalog* catalog, absl::Duration interval,
                absl::Duration grace, uint64_t bandwidth_bps)
      : self_(std::move(self)),
        catalog_(catalog),
        interval_(interval),
        grace_(grace),
        bandwidth_bps_(bandwidth_bps) {}
  ~RepairScanner() { Stop(); }
  void Start();  // no-op for a zero interval
  void Stop();
  // One pass; returns the disks it started repairs of.
  std::vector<std::string> ScanOnce();

 private:
  // Keeps down_since_ms current; returns the nodes whose replicas must move.
  std::set<std::string> Leaving(const std::vector<pb::NodeInfo>& nodes,
                                const std::set<std::string>& live);

  const std::string self_;
  meta::Catalog* catalog_;
  const absl::Duration interval_, grace_;
  const uint64_t bandwidth_bps_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace ukai::control

#endif  // UKAI_CONTROL_REPAIR_SCANNER_H_
