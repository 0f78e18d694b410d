// CRC32C (Castagnoli), the checksum on every stored page. Thread-safe.
#ifndef UKAI_COMMON_CRC32C_H_
#define UKAI_COMMON_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace ukai {
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);
}  // namespace ukai

#endif  // UKAI_COMMON_CRC32C_H_
