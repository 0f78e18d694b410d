// Process-wide settings shared by the daemons on the I/O path (ukai-node,
// ukai-fuse). Call once from main, before starting threads.
#ifndef UKAI_COMMON_PROCESS_H_
#define UKAI_COMMON_PROCESS_H_

namespace ukai {
void SetUpDaemon(bool verbose);
}  // namespace ukai

#endif  // UKAI_COMMON_PROCESS_H_
