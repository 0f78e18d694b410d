// Collector: every node's periodic collection of objects nobody names any
// more (CopyService::CollectDisk, for each disk it stores). `snap delete`
// asks the live nodes at once; this catches the rest: a node that was down
// then, and objects of a copy-on-write whose writer died before its pointer
// switch (they become collectable once the disk's generation moves on).
#ifndef UKAI_NODE_COLLECTOR_H_
#define UKAI_NODE_COLLECTOR_H_

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "node/block_store.h"
#include "node/copy_service.h"

namespace ukai::node {

class Collector {
 public:
  Collector(CopyService* copy, BlockStore* store, absl::Duration every)
      : copy_(copy), store_(store), every_(every) {}
  ~Collector() { Stop(); }
  void Start();  // no-op for a zero `every`; the first pass one `every` after start
  void Stop();
  // One pass over every disk stored here; returns the objects dropped.
  uint64_t CollectOnce();

 private:
  CopyService* copy_;
  BlockStore* store_;
  const absl::Duration every_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace ukai::node

#endif  // UKAI_NODE_COLLECTOR_H_
