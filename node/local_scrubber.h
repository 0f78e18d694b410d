// LocalScrubber: every node's slow, periodic scrub of what it stores. Once
// per `every` it reads each stored page of each object whose block pointer
// lists this node CLEAN at the object's generation, at most `bandwidth_bps`
// bytes/s, and checks it against its checksum (BlockStore::VerifyPages).
// A replica with a bad page is marked STALE for its block (a node's repair
// scan then copies it back from a clean one) unless it is the block's last
// CLEAN replica: that one is kept and logged, as a copy with one bad page
// beats no copy (reads of the bad page fail rather than return it). Cross-replica comparison is the
// SCRUB job's (`ukaictl scrub`); this one needs no other node and no job, and catches rot in data
// nobody reads.
#ifndef UKAI_NODE_LOCAL_SCRUBBER_H_
#define UKAI_NODE_LOCAL_SCRUBBER_H_

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/rate_limiter.h"
#include "meta/catalog.h"
#include "node/block_store.h"

namespace ukai::node {

class LocalScrubber {
 public:
  struct Pass {
    uint64_t pages_checked = 0;
    uint64_t bad_pages = 0;
    uint64_t replicas_marked_stale = 0;
  };

  LocalScrubber(std::string self, meta::Catalog* catalog, BlockStore* store, absl::Duration every,
                uint64_t bandwidth_bps)
      : self_(std::move(self)),
        catalog_(catalog),
        store_(store),
        every_(every),
        pace_(bandwidth_bps) {}
  ~LocalScrubber() { Stop(); }
  void Start();  // no-op for a zero `every`; the first pass one `every` after start
  void Stop();
  // One whole pass over the store (stops early on Stop()).
  Pass ScanOnce();

 private:
  // Scrubs the object of `block` at `generation` if this node holds it CLEAN.
  void ScrubObject(const pb::DiskSpec& spec, const ObjectId& obj, Pass* pass);

  const std::string self_;
  meta::Catalog* catalog_;
  BlockStore* store_;
  const absl::Duration every_;
  RateLimiter pace_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace ukai::node

#endif  // UKAI_NODE_LOCAL_SCRUBBER_H_
