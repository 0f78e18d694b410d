// IoRing: file reads done with io_uring on one thread of its own. Callers
// queue a batch of ranges (DiskReads) and get a callback on the ring's thread
// once every range is read. Whatever is queued while the ring is busy goes to
// the kernel in one submission, so the block layer sees the reads together
// and no thread waits in pread for each one.
//
// Why: a storage node's 4 KiB reads of pages not in memory went to a pool of
// worker threads, each waking to block in pread: per read, a hand-over, a
// sleep, a wake-up and a second index lookup (docs/ARCHITECTURE.md,
// "Performance notes").
//
// Thread-safe: Read from any thread. Callbacks run on the ring's thread, one
// at a time; they must not block for long (a socket send is fine).
#ifndef UKAI_COMMON_IO_RING_H_
#define UKAI_COMMON_IO_RING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace ukai {

// Ranges of open files to read, each into a buffer the caller owns. The
// object (a subclass, typically) keeps the fds open and the buffers alive
// until the callback has run.
class DiskReads {
 public:
  struct Range {
    int fd = -1;
    uint64_t offset = 0;
    char* buf = nullptr;
    uint32_t len = 0;
    // Set by the ring: bytes read (less than `len` only at end of file), and
    // the errno of a failed read (0 when none; then `done` is what was read
    // before it).
    uint32_t done = 0;
    int error = 0;
  };
  virtual ~DiskReads() = default;
  std::vector<Range> ranges;
};

class IoRing {
 public:
  using Callback = std::function<void(DiskReads&)>;

  // UNAVAILABLE when the kernel refuses io_uring (too old, or disabled by
  // kernel.io_uring_disabled or a seccomp policy); callers then read as
  // before.
  static absl::StatusOr<std::unique_ptr<IoRing>> Start(unsigned depth = 256);
  // Finishes every read queued, runs its callback, and stops the thread.
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  // Reads every range of `reads`, then calls `done(*reads)` on the ring's
  // thread and destroys `reads`.
  void Read(std::unique_ptr<DiskReads> reads, Callback done);

 private:
  struct Op;
  struct Impl;
  IoRing();
  void Loop();

  std::unique_ptr<Impl> impl_;
  absl::Mutex mu_;
  std::vector<Op*> queue_ ABSL_GUARDED_BY(mu_);
  bool idle_ ABSL_GUARDED_BY(mu_) = false;  // the thread waits: wake it (eventfd)
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ukai

#endif  // UKAI_COMMON_IO_RING_H_
