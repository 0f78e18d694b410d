// Process-wide settings shared by the daemons on the I/O path (ukai-node,
// ukai-fuse). Call once from main, before starting threads.
#ifndef UKAI_COMMON_PROCESS_H_
#define UKAI_COMMON_PROCESS_H_

namespace ukai {
void SetUpDaemon(bool verbose);

// The nice value background threads (copies) run at: when the CPU is busy,
// foreground I/O gets it first (CFS weight 110 against 1024).
constexpr int kBackgroundNice = 10;
// Gives the calling thread (only it) `nice`. Raising it needs no privilege;
// a failure is ignored: the thread keeps its priority.
void SetThreadNice(int nice);
}  // namespace ukai

#endif  // UKAI_COMMON_PROCESS_H_
