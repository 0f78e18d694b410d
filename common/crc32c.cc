#include "common/crc32c.h"

#include <cstring>

namespace ukai {
namespace {

struct Table {
  uint32_t t[256];
  Table() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
  }
};

uint32_t Portable(const uint8_t* p, size_t n, uint32_t crc) {
  static const Table table;
  for (size_t i = 0; i < n; ++i) crc = table.t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t OneStream(const uint8_t* p, size_t n, uint32_t crc) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

// The crc32 instruction takes 3 cycles and can start one every cycle, so
// one stream of them runs at a third of the speed the core can. Three
// stripes of kStride bytes run side by side from registers a (the running
// CRC), b and c (zero); since a CRC is linear,
//   crc(a-stripe, b-stripe, c-stripe) = Z2(a) ^ Z1(b) ^ c,
// where Z1 and Z2 advance a CRC over kStride and 2 * kStride zero bytes.
// On 1 MiB writes the one-stream loop was 7.6% of all CPU (perf).
constexpr size_t kStride = 1360;  // 3 stripes cover a 4 KiB page but 16 bytes

// A linear map on CRC registers (advancing over `zeros` zero bytes), as
// four byte-indexed tables.
struct Advance {
  uint32_t t[4][256];
  explicit Advance(size_t zeros) {
    static const uint8_t kZeros[2 * kStride] = {};
    uint32_t bit[32];
    for (int i = 0; i < 32; ++i) bit[i] = OneStream(kZeros, zeros, 1u << i);
    for (int k = 0; k < 4; ++k) {
      for (uint32_t v = 0; v < 256; ++v) {
        uint32_t r = 0;
        for (int i = 0; i < 8; ++i) {
          if (v & (1u << i)) r ^= bit[8 * k + i];
        }
        t[k][v] = r;
      }
    }
  }
  uint32_t operator()(uint32_t c) const {
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
  }
};

__attribute__((target("sse4.2"))) uint32_t Hardware(const uint8_t* p, size_t n, uint32_t crc) {
  if (n >= 3 * kStride) {
    static const Advance z1(kStride), z2(2 * kStride);
    do {
      uint64_t a = crc, b = 0, c = 0;
      for (size_t i = 0; i < kStride; i += 8) {
        uint64_t va, vb, vc;
        memcpy(&va, p + i, 8);
        memcpy(&vb, p + kStride + i, 8);
        memcpy(&vc, p + 2 * kStride + i, 8);
        a = __builtin_ia32_crc32di(a, va);
        b = __builtin_ia32_crc32di(b, vb);
        c = __builtin_ia32_crc32di(c, vc);
      }
      crc = z2(static_cast<uint32_t>(a)) ^ z1(static_cast<uint32_t>(b)) ^ static_cast<uint32_t>(c);
      p += 3 * kStride;
      n -= 3 * kStride;
    } while (n >= 3 * kStride);
  }
  return OneStream(p, n, crc);
}
#endif

}  // namespace

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  crc = hw ? Hardware(p, n, crc) : Portable(p, n, crc);
#else
  crc = Portable(p, n, crc);
#endif
  return ~crc;
}

}  // namespace ukai
