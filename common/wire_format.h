// The block I/O wire format: length-prefixed frames on one TCP connection,
// many calls in flight, answered in any order and matched by tag. Carries
// NodeOps's Read, Write and Flush, and the node-to-node Pull of background
// copies (everything else stays on gRPC);
// docs/PROTOCOL.md, "Block I/O transport", says why and gives the layout.
//
// Every frame is a 32-byte header, then `meta_len` bytes of metadata, then
// `data_len` bytes of data:
//
//   offset  size  field
//   0       4     magic "UKW1" (0x31574b55 little-endian)
//   4       2     method (kRead, kWrite, kFlush, kHello, kPull; 0 is never valid)
//   6       2     status: 0 in requests; an absl::StatusCode in replies
//   8       8     tag: chosen by the client, echoed by the reply
//   16      4     meta_len: a serialized protobuf request, or a reply's error text
//   20      4     data_len: a write's payload, or a read reply's bytes
//   24      8     reserved, zero
//
// All integers are little-endian. A peer that sees a bad magic, a zero
// method, a length over its limit or a reserved byte not zero closes the
// connection.
#ifndef UKAI_COMMON_WIRE_FORMAT_H_
#define UKAI_COMMON_WIRE_FORMAT_H_

#include <cstdint>
#include <cstring>

namespace ukai::wire {

constexpr uint32_t kMagic = 0x31574b55;  // "UKW1"
constexpr size_t kHeaderBytes = 32;
constexpr uint32_t kMaxMetaBytes = 64 << 10;
constexpr uint32_t kMaxDataBytes = 64 << 20;  // the largest block size

// kHello: sent once by a client before anything else; its meta is the
// client's site (at most kMaxSiteBytes). Answered OK; the transport keeps it.
//
// kPull: meta is a pb::PullRequest for `pages` pages from `first_page`. An OK
// reply's data is the stored pages among them, 4 KiB each in page order, then
// one byte per requested page: 1 stored (its 4 KiB are in the data), 0 not.
// The flags come last so the node reads pages straight into the reply.
//
// kCopyUp: meta is a pb::CopyUpRequest; no data either way. Answered once the
// copy is durable.
enum Method : uint16_t { kRead = 1, kWrite = 2, kFlush = 3, kHello = 4, kPull = 5, kCopyUp = 6 };
constexpr uint32_t kMaxSiteBytes = 256;

struct Header {
  uint16_t method = 0;
  uint16_t status = 0;
  uint64_t tag = 0;
  uint32_t meta_len = 0;
  uint32_t data_len = 0;
};

// The host is little-endian (x86-64, arm64 as run); memcpy keeps it portable
// between them without alignment assumptions.
inline void EncodeHeader(const Header& h, char out[kHeaderBytes]) {
  memset(out, 0, kHeaderBytes);
  uint32_t magic = kMagic;
  memcpy(out, &magic, 4);
  memcpy(out + 4, &h.method, 2);
  memcpy(out + 6, &h.status, 2);
  memcpy(out + 8, &h.tag, 8);
  memcpy(out + 16, &h.meta_len, 4);
  memcpy(out + 20, &h.data_len, 4);
}

// False when the frame is malformed (bad magic, no method, over the limits,
// reserved bytes not zero).
inline bool DecodeHeader(const char in[kHeaderBytes], Header* h) {
  uint32_t magic;
  uint64_t reserved;
  memcpy(&magic, in, 4);
  memcpy(&reserved, in + 24, 8);
  memcpy(&h->method, in + 4, 2);
  memcpy(&h->status, in + 6, 2);
  memcpy(&h->tag, in + 8, 8);
  memcpy(&h->meta_len, in + 16, 4);
  memcpy(&h->data_len, in + 20, 4);
  return magic == kMagic && h->method != 0 && h->meta_len <= kMaxMetaBytes &&
         h->data_len <= kMaxDataBytes && reserved == 0;
}

}  // namespace ukai::wire

#endif  // UKAI_COMMON_WIRE_FORMAT_H_
