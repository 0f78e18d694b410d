// OnEachNode: one call per node, all at once (over an executor), for the
// control plane's cluster-wide steps: fence every node after a snapshot,
// collect after a delete. Failures are logged and named, never fatal here.
#ifndef UKAI_CONTROL_ON_EACH_NODE_H_
#define UKAI_CONTROL_ON_EACH_NODE_H_

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/executor.h"
#include "common/log.h"

namespace ukai::control {

// Runs fn(node) for every node of `nodes` at once; returns the nodes it
// failed on (each logged with its error).
inline std::vector<std::string> OnEachNode(
    Executor* executor, const std::set<std::string>& nodes,
    const std::function<absl::Status(const std::string&)>& fn) {
  const std::vector<std::string> list(nodes.begin(), nodes.end());
  std::vector<absl::Status> results(list.size());
  ParallelFor(executor, list.size(), list.size(), [&](size_t i) { results[i] = fn(list[i]); });
  std::vector<std::string> failed;
  for (size_t i = 0; i < list.size(); ++i) {
    if (results[i].ok()) continue;
    LOG_WARN("%s: %s", list[i], results[i].ToString());
    failed.push_back(list[i]);
  }
  return failed;
}

}  // namespace ukai::control

#endif  // UKAI_CONTROL_ON_EACH_NODE_H_
