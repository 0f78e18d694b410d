// Test helper: pushes the extent store's object files out of the page cache,
// so the next read of their pages has to wait for the disk.
#ifndef UKAI_NODE_PAGE_CACHE_TESTING_H_
#define UKAI_NODE_PAGE_CACHE_TESTING_H_

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace ukai::node {

// Drops the clean cached pages of every file under `dir` (sync first) and
// returns how many pages the kernel kept anyway (mincore), -1 on error.
inline int DropCachedPages(const std::string& dir) {
  int resident = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file() || e.file_size() == 0) continue;
    int fd = open(e.path().c_str(), O_RDONLY);
    if (fd < 0) return -1;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    const size_t size = e.file_size();
    void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return -1;
    std::vector<unsigned char> vec((size + 4095) / 4096);
    const int rc = mincore(map, size, vec.data());
    munmap(map, size);
    if (rc != 0) return -1;
    for (unsigned char v : vec) resident += v & 1;
  }
  return resident;
}

}  // namespace ukai::node

#endif  // UKAI_NODE_PAGE_CACHE_TESTING_H_
