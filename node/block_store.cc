#include "node/block_store.h"

#include <cstring>

#include "absl/hash/hash.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "common/status.h"
#include "meta/layout.h"

namespace ukai::node {
namespace {

constexpr uint32_t kPage = meta::kPageSize;
constexpr size_t kValueSize = 4 + kPage;  // little-endian CRC32C, then the page

// Copies a stored value's page to `dst` after checking it.
absl::Status DecodePage(const std::string& v, const PageKey& k, char* dst) {
  uint32_t want = 0;
  if (v.size() == kValueSize) {
    for (int i = 0; i < 4; ++i) want |= static_cast<uint32_t>(static_cast<uint8_t>(v[i])) << (8 * i);
  }
  if (v.size() != kValueSize || Crc32c(v.data() + 4, kPage) != want) {
    return absl::DataLossError(absl::StrFormat("disk %d block %d page %d: checksum mismatch",
                                               k.disk, k.block, k.page));
  }
  memcpy(dst, v.data() + 4, kPage);
  return absl::OkStatus();
}

bool AllZero(const char* p, size_t n) {
  static const char zeros[kPage] = {};
  return memcmp(p, zeros, n) == 0;
}

}  // namespace

absl::Mutex& BlockStore::LockFor(const ObjectId& obj) {
  return stripes_[absl::HashOf(obj.disk, obj.block) % stripes_.size()];
}

absl::Status BlockStore::Write(const ObjectId& obj, uint32_t offset, absl::string_view data) {
  if (data.empty()) return absl::OkStatus();
  const uint32_t first = offset / kPage;
  const uint32_t end = offset + static_cast<uint32_t>(data.size());
  const uint32_t last = (end - 1) / kPage;
  auto key = [&](uint32_t p) { return PageKey{obj.disk, obj.block, obj.generation, p}; };
  const bool head_partial = offset % kPage != 0 || (first == last && end % kPage != 0);
  const bool tail_partial = last != first && end % kPage != 0;

  absl::MutexLock l(&LockFor(obj));
  // Read the partial pages we merge into.
  std::vector<PageKey> rmw_keys;
  if (head_partial) rmw_keys.push_back(key(first));
  if (tail_partial) rmw_keys.push_back(key(last));
  std::vector<std::optional<std::string>> old;
  if (!rmw_keys.empty()) RETURN_IF_ERROR(pages_->Get(rmw_keys, &old));

  std::vector<PageMutation> batch;
  batch.reserve(last - first + 1);
  char merged[2][kPage];  // the partial head and tail pages, merged here
  size_t rmw_index = 0;
  for (uint32_t p = first; p <= last; ++p) {
    const uint32_t page_start = p * kPage;
    const uint32_t from = std::max(offset, page_start);
    const uint32_t to = std::min(end, page_start + kPage);
    PageMutation m;
    m.key = key(p);
    if (from == page_start && to == page_start + kPage) {
      m.data = data.data() + (from - offset);  // a whole page: straight from the request
    } else {
      char* page = merged[rmw_index];
      const auto& prev = old[rmw_index++];
      if (prev) {
        RETURN_IF_ERROR(DecodePage(*prev, m.key, page));
      } else {
        memset(page, 0, kPage);
      }
      memcpy(page + (from - page_start), data.data() + (from - offset), to - from);
      m.data = page;
    }
    if (AllZero(m.data, kPage)) {
      m.erase = true;
    } else {
      m.crc = Crc32c(m.data, kPage);
    }
    batch.push_back(m);
  }
  return pages_->Apply(batch);
}

absl::Status BlockStore::Read(const ObjectId& obj, uint32_t offset, uint32_t length,
                              std::string* out, bool may_block) {
  if (length == 0) return absl::OkStatus();
  const uint32_t first = offset / kPage;
  const uint32_t last = (offset + length - 1) / kPage;
  std::vector<PageKey> keys;
  keys.reserve(last - first + 1);
  for (uint32_t p = first; p <= last; ++p) keys.push_back({obj.disk, obj.block, obj.generation, p});
  std::vector<std::optional<std::string>> vals;
  RETURN_IF_ERROR(may_block ? pages_->Get(keys, &vals) : pages_->GetNoWait(keys, &vals));
  size_t base = out->size();
  out->resize(base + length);
  char* dst = out->data() + base;
  char page[kPage];
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t page_start = keys[i].page * kPage;
    const uint32_t from = std::max(offset, page_start);
    const uint32_t to = std::min(offset + length, page_start + kPage);
    if (!vals[i]) {
      memset(dst + (from - offset), 0, to - from);
      continue;
    }
    RETURN_IF_ERROR(DecodePage(*vals[i], keys[i], page));
    memcpy(dst + (from - offset), page + (from - page_start), to - from);
  }
  return absl::OkStatus();
}

}  // namespace ukai::node
