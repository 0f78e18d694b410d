#include "common/process.h"

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "absl/synchronization/mutex.h"
#include "common/log.h"

namespace ukai {

void SetUpDaemon(bool verbose) {
  // Debian's Abseil is built with Mutex deadlock detection on; it cost ~5% of
  // the I/O path (profiled). The unit tests keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Every request carries up to a few MiB; keep freed buffers in the heap
  // instead of returning them to the kernel and faulting them in again (page
  // faults and page clearing were ~12% of the 1 MiB write path, profiled).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // A peer that vanished must be an error on the write, never a signal that
  // kills the daemon (the transports also send with MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  if (verbose) SetLogLevel(LogLevel::kDebug);
  RouteGrpcLogs(LogLevel::kInfo);
}

void SetThreadNice(int nice) {
  // On Linux a thread id names one thread for setpriority.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice);
}

}  // namespace ukai
