#include "node/block_store.h"

#include <cstring>
#include <set>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "common/status.h"
#include "meta/layout.h"

namespace ukai::node {
namespace {

constexpr uint32_t kPage = meta::kPageSize;
constexpr size_t kValueSize = 4 + kPage;  // little-endian CRC32C, then the page

// What a read without the block's lock may see because of a write or drop
// landing in the middle of it.
bool RaceMayExplain(const absl::Status& s) { return absl::IsDataLoss(s) || absl::IsNotFound(s); }

// The same read under the lock: an object file missing behind index entries
// is lost data, as a bad checksum is (the client reads another replica).
absl::Status LostUnderLock(absl::Status s) {
  if (!absl::IsNotFound(s)) return s;
  return absl::DataLossError(absl::StrCat("pages without their file: ", s.message()));
}

absl::Status Mismatch(const PageKey& k) {
  return absl::DataLossError(
      absl::StrFormat("disk %d block %d page %d: checksum mismatch", k.disk, k.block, k.page));
}

// The checksum a stored value carries (0 for a malformed one).
uint32_t StoredCrc(const std::string& v) {
  uint32_t crc = 0;
  if (v.size() != kValueSize) return 0;
  for (int i = 0; i < 4; ++i) crc |= static_cast<uint32_t>(static_cast<uint8_t>(v[i])) << (8 * i);
  return crc;
}

// Copies a stored value's page to `dst` after checking it.
absl::Status DecodePage(const std::string& v, const PageKey& k, char* dst) {
  if (v.size() != kValueSize || Crc32c(v.data() + 4, kPage) != StoredCrc(v)) return Mismatch(k);
  memcpy(dst, v.data() + 4, kPage);
  return absl::OkStatus();
}

bool AllZero(const char* p, size_t n) {
  static const char zeros[kPage] = {};
  return memcmp(p, zeros, n) == 0;
}

// Marks live in the object's shadow (generation | kMarkGeneration): page m of
// it holds one sector mask byte for each of pages [m * 4096, (m + 1) * 4096).
constexpr uint32_t kMasksPerPage = kPage;
constexpr uint8_t kAllSectors = 0xff;
ObjectId MarksOf(const ObjectId& o) { return {o.disk, o.block, o.generation | kMarkGeneration}; }

// The pages of an object of `block_size` bytes, and of its marks.
uint32_t PageCount(uint32_t block_size) { return (block_size + kPage - 1) / kPage; }
uint32_t MarkPageCount(uint32_t block_size) {
  return (PageCount(block_size) + kMasksPerPage - 1) / kMasksPerPage;
}

// Bit i set: sector i of the page lies inside [from, to) (page-relative).
uint8_t SectorMask(uint32_t from, uint32_t to) {
  uint8_t m = 0;
  for (uint32_t s = from / kSector; s < (to + kSector - 1) / kSector; ++s) m |= uint8_t(1u << s);
  return m;
}

}  // namespace

absl::Status BlockStore::LoadMarkPages(const ObjectId& obj, uint32_t first, uint32_t last,
                                       std::vector<PageKey>* keys,
                                       std::vector<std::string>* pages) {
  const ObjectId mo = MarksOf(obj);
  keys->clear();
  for (uint32_t m = first / kMasksPerPage; m <= last / kMasksPerPage; ++m) {
    keys->push_back({mo.disk, mo.block, mo.generation, m});
  }
  std::vector<std::optional<std::string>> vals;
  RETURN_IF_ERROR(pages_->Get(*keys, &vals));
  pages->assign(keys->size(), std::string(kPage, '\0'));
  for (size_t i = 0; i < keys->size(); ++i) {
    if (vals[i]) RETURN_IF_ERROR(DecodePage(*vals[i], (*keys)[i], (*pages)[i].data()));
  }
  return absl::OkStatus();
}

absl::Status BlockStore::ReadMarks(const ObjectId& obj, uint32_t first, uint32_t last,
                                   std::vector<uint8_t>* masks) {
  std::vector<PageKey> keys;
  std::vector<std::string> pages;
  RETURN_IF_ERROR(LoadMarkPages(obj, first, last, &keys, &pages));
  masks->assign(last - first + 1, 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t base = keys[i].page * kMasksPerPage;
    for (uint32_t p = std::max(first, base); p <= last && p < base + kMasksPerPage; ++p) {
      (*masks)[p - first] = static_cast<uint8_t>(pages[i][p - base]);
    }
  }
  return absl::OkStatus();
}

absl::Mutex& BlockStore::LockFor(const ObjectId& obj) {
  return stripes_[absl::HashOf(obj.disk, obj.block) % stripes_.size()];
}

// A link is page 0 of the object's link shadow (generation | kLinkGeneration):
// the magic, then the generation linked to, little-endian.
namespace {
constexpr char kLinkMagic[8] = {'U', 'K', 'L', 'I', 'N', 'K', '0', '1'};
PageKey LinkKey(const ObjectId& o) { return {o.disk, o.block, o.generation | kLinkGeneration, 0}; }
}  // namespace

absl::StatusOr<std::optional<uint64_t>> BlockStore::LinkOf(const ObjectId& obj, bool may_block) {
  const PageKey key = LinkKey(obj);
  std::vector<std::optional<std::string>> vals;
  RETURN_IF_ERROR(may_block ? pages_->Get({key}, &vals) : pages_->GetNoWait({key}, &vals));
  if (!vals[0]) return std::nullopt;
  char page[kPage];
  RETURN_IF_ERROR(DecodePage(*vals[0], key, page));
  if (memcmp(page, kLinkMagic, sizeof kLinkMagic) != 0) {
    return absl::DataLossError(absl::StrFormat("disk %d block %d generation %d: malformed link",
                                               obj.disk, obj.block, obj.generation));
  }
  uint64_t to = 0;
  for (int i = 0; i < 8; ++i) to |= uint64_t{static_cast<uint8_t>(page[8 + i])} << (8 * i);
  return to;
}

absl::StatusOr<int> BlockStore::LinkDepth(const ObjectId& obj) {
  ObjectId at = obj;
  for (int depth = 0; depth <= kMaxLinkDepth; ++depth) {
    ASSIGN_OR_RETURN(auto to, LinkOf(at, /*may_block=*/true));
    if (!to) return depth;
    at.generation = *to;
  }
  return kMaxLinkDepth + 1;
}

void BlockStore::SetLink(const ObjectId& obj, std::optional<uint64_t> to, std::string* page,
                         std::vector<PageMutation>* batch) {
  PageMutation m;
  m.key = LinkKey(obj);
  if (!to) {
    m.erase = true;
  } else {
    page->assign(kPage, '\0');
    memcpy(page->data(), kLinkMagic, sizeof kLinkMagic);
    for (int i = 0; i < 8; ++i) (*page)[8 + i] = static_cast<char>((*to >> (8 * i)) & 0xff);
    m.data = page->data();
    m.crc = Crc32c(m.data, kPage);
  }
  batch->push_back(m);
}

absl::Status BlockStore::GetResolved(std::vector<PageKey>* keys,
                                     std::vector<std::optional<std::string>>* vals,
                                     bool may_block) {
  RETURN_IF_ERROR(may_block ? pages_->Get(*keys, vals) : pages_->GetNoWait(*keys, vals));
  if (keys->empty()) return absl::OkStatus();
  ObjectId at{(*keys)[0].disk, (*keys)[0].block, (*keys)[0].generation};
  // Each step, every page still missing is missing from the same object.
  for (int depth = 0;; ++depth) {
    std::vector<size_t> missing;
    for (size_t i = 0; i < keys->size(); ++i) {
      if (!(*vals)[i]) missing.push_back(i);
    }
    if (missing.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto to, LinkOf(at, may_block));
    if (!to) return absl::OkStatus();  // never written: zeros
    if (depth > kMaxLinkDepth) {
      return absl::DataLossError(
          absl::StrFormat("disk %d block %d generation %d: links deeper than %d", at.disk, at.block,
                          (*keys)[0].generation, kMaxLinkDepth));
    }
    at.generation = *to;
    std::vector<PageKey> sub;
    for (size_t i : missing) {
      (*keys)[i].generation = *to;
      sub.push_back((*keys)[i]);
    }
    std::vector<std::optional<std::string>> got;
    RETURN_IF_ERROR(may_block ? pages_->Get(sub, &got) : pages_->GetNoWait(sub, &got));
    for (size_t j = 0; j < missing.size(); ++j) (*vals)[missing[j]] = std::move(got[j]);
  }
}

absl::StatusOr<std::vector<uint64_t>> BlockStore::LinkedTo(const ObjectId& obj) {
  ASSIGN_OR_RETURN(auto held, pages_->Objects(obj.disk, obj.block, obj.block + 1));
  std::vector<uint64_t> out;
  for (const auto& [block, generation] : held) {
    if ((generation & kLinkGeneration) == 0 || (generation & kMarkGeneration) != 0) continue;
    const ObjectId o{obj.disk, block, generation & ~kLinkGeneration};
    ASSIGN_OR_RETURN(auto to, LinkOf(o, /*may_block=*/true));
    if (to && *to == obj.generation) out.push_back(o.generation);
  }
  return out;
}

absl::Status BlockStore::SealPage(const ObjectId& obj, std::optional<bool>* linked,
                                  PageMutation* m) {
  if (AllZero(m->data, kPage)) {
    if (!linked->has_value()) {
      ASSIGN_OR_RETURN(auto to, LinkOf(obj, /*may_block=*/true));
      *linked = to.has_value();
    }
    // A linked copy keeps zero pages: erased, they would read through the link.
    m->erase = !**linked;
  }
  if (!m->erase) m->crc = Crc32c(m->data, kPage);
  return absl::OkStatus();
}

absl::Status BlockStore::Write(const ObjectId& obj, uint32_t offset, absl::string_view data,
                               bool track) {
  if (data.empty()) return absl::OkStatus();
  if (track && (offset % kSector != 0 || data.size() % kSector != 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "disk %d block %d: a write to a syncing replica must cover whole 512-byte sectors "
        "([%d, +%d) does not)",
        obj.disk, obj.block, offset, data.size()));
  }
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
  if (!rmw_keys.empty()) RETURN_IF_ERROR(GetResolved(&rmw_keys, &old, /*may_block=*/true));
  std::optional<bool> linked;  // for SealPage

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
    RETURN_IF_ERROR(SealPage(obj, &linked, &m));
    batch.push_back(m);
  }
  // Tracked: OR the written sectors into the mark pages, in the same batch.
  std::vector<PageKey> mark_keys;
  std::vector<std::string> mark_pages;
  if (track) {
    RETURN_IF_ERROR(LoadMarkPages(obj, first, last, &mark_keys, &mark_pages));
    for (size_t i = 0; i < mark_keys.size(); ++i) {
      std::string& mp = mark_pages[i];
      const uint32_t base = mark_keys[i].page * kMasksPerPage;
      for (uint32_t p = std::max(first, base); p <= last && p < base + kMasksPerPage; ++p) {
        const uint32_t page_start = p * kPage;
        const uint32_t from = std::max(offset, page_start) - page_start;
        const uint32_t to = std::min(end, page_start + kPage) - page_start;
        mp[p - base] = static_cast<char>(static_cast<uint8_t>(mp[p - base]) | SectorMask(from, to));
      }
      PageMutation m;
      m.key = mark_keys[i];
      m.data = mp.data();
      m.crc = Crc32c(mp.data(), kPage);
      batch.push_back(m);
    }
  }
  return pages_->Apply(batch);
}

absl::Status BlockStore::ReadPages(const ObjectId& obj, uint32_t first, uint32_t n,
                                   std::vector<bool>* present, std::string* data) {
  absl::Status s = ReadPagesUnlocked(obj, first, n, present, data);
  if (!RaceMayExplain(s)) return s;
  absl::MutexLock l(&LockFor(obj));  // as Read: once more with no write landing
  return LostUnderLock(ReadPagesUnlocked(obj, first, n, present, data));
}

absl::Status BlockStore::ReadPagesUnlocked(const ObjectId& obj, uint32_t first, uint32_t n,
                                           std::vector<bool>* present, std::string* data) {
  present->assign(n, false);
  data->clear();
  std::vector<PageKey> keys;
  keys.reserve(n);
  for (uint32_t p = first; p < first + n; ++p)
    keys.push_back({obj.disk, obj.block, obj.generation, p});
  std::vector<std::optional<std::string>> vals;
  RETURN_IF_ERROR(GetResolved(&keys, &vals, /*may_block=*/true));
  for (uint32_t i = 0; i < n; ++i) {
    if (!vals[i]) continue;
    (*present)[i] = true;
    size_t at = data->size();
    data->resize(at + kPage);
    RETURN_IF_ERROR(DecodePage(*vals[i], keys[i], data->data() + at));
  }
  return absl::OkStatus();
}

absl::Status BlockStore::VerifyPages(const ObjectId& obj, uint32_t first, uint32_t n,
                                     std::vector<uint32_t>* crcs, std::vector<bool>* present,
                                     std::vector<uint32_t>* bad) {
  crcs->assign(n, 0);
  present->assign(n, false);
  bad->clear();
  std::vector<PageKey> keys;
  keys.reserve(n);
  for (uint32_t p = first; p < first + n; ++p)
    keys.push_back({obj.disk, obj.block, obj.generation, p});
  std::vector<std::optional<std::string>> vals;
  const std::vector<PageKey> asked = keys;
  absl::Status got = GetResolved(&keys, &vals, /*may_block=*/true);
  if (RaceMayExplain(got)) {
    absl::MutexLock l(&LockFor(obj));
    keys = asked;
    got = LostUnderLock(GetResolved(&keys, &vals, /*may_block=*/true));
  }
  RETURN_IF_ERROR(got);
  char page[kPage];
  for (uint32_t i = 0; i < n; ++i) {
    if (!vals[i]) continue;
    (*present)[i] = true;
    (*crcs)[i] = StoredCrc(*vals[i]);
    if (DecodePage(*vals[i], keys[i], page).ok()) continue;
    std::vector<std::optional<std::string>> again;  // once more, no write landing
    {
      absl::MutexLock l(&LockFor(obj));
      RETURN_IF_ERROR(LostUnderLock(pages_->Get({keys[i]}, &again)));
    }
    if (!again[0]) {
      (*present)[i] = false;
      (*crcs)[i] = 0;
      continue;
    }
    (*crcs)[i] = StoredCrc(*again[0]);
    if (!DecodePage(*again[0], keys[i], page).ok()) bad->push_back(first + i);
  }
  return absl::OkStatus();
}

absl::Status BlockStore::ApplyPulled(const ObjectId& obj, uint32_t first,
                                     const std::vector<bool>& present, absl::string_view data) {
  size_t want = 0;
  for (bool b : present) want += b ? kPage : 0;
  if (data.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrFormat("disk %d block %d: %d bytes of pulled pages for %d present pages", obj.disk,
                        obj.block, data.size(), want / kPage));
  }
  if (present.empty()) return absl::OkStatus();
  const uint32_t last = first + static_cast<uint32_t>(present.size()) - 1;
  absl::MutexLock l(&LockFor(obj));
  std::vector<uint8_t> masks;
  RETURN_IF_ERROR(ReadMarks(obj, first, last, &masks));
  // Partly marked pages: the local sectors go over the pulled page.
  std::vector<PageKey> partial;
  for (uint32_t i = 0; i < present.size(); ++i) {
    if (present[i] && masks[i] != 0 && masks[i] != kAllSectors) {
      partial.push_back({obj.disk, obj.block, obj.generation, first + i});
    }
  }
  std::vector<std::optional<std::string>> local;
  if (!partial.empty()) RETURN_IF_ERROR(pages_->Get(partial, &local));
  std::vector<std::string> merged(partial.size());
  std::optional<bool> linked;  // for SealPage
  std::vector<PageMutation> batch;
  size_t at = 0, pi = 0;
  for (uint32_t i = 0; i < present.size(); ++i) {
    if (!present[i]) continue;
    const char* src = data.data() + at;
    at += kPage;
    if (masks[i] == kAllSectors) continue;  // written since the copy began
    PageMutation m;
    m.key = {obj.disk, obj.block, obj.generation, first + i};
    m.data = src;
    if (masks[i] != 0) {
      std::string& page = merged[pi];
      page.assign(src, kPage);
      char mine[kPage] = {};
      if (local[pi]) RETURN_IF_ERROR(DecodePage(*local[pi], partial[pi], mine));
      ++pi;
      for (uint32_t sec = 0; sec < kPage / kSector; ++sec) {
        if (masks[i] & (1u << sec)) memcpy(&page[sec * kSector], mine + sec * kSector, kSector);
      }
      m.data = page.data();
    }
    RETURN_IF_ERROR(SealPage(obj, &linked, &m));
    batch.push_back(m);
  }
  if (batch.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(pages_->Apply(batch));
  // A copy writes much and syncs once at the end: write back as it goes.
  pages_->StartWriteback(obj.disk, obj.block, obj.generation, first,
                         static_cast<uint32_t>(present.size()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ObjectId>> BlockStore::Objects(uint64_t disk, uint64_t first,
                                                          uint64_t end) {
  ASSIGN_OR_RETURN(auto objects, pages_->Objects(disk, first, end));
  // A linked copy that holds no page of its own yet is there all the same.
  std::set<std::pair<uint64_t, uint64_t>> found;
  for (const auto& [block, generation] : objects) {
    if ((generation & kMarkGeneration) == 0) found.insert({block, generation & ~kLinkGeneration});
  }
  std::vector<ObjectId> out;
  for (const auto& [block, generation] : found) out.push_back({disk, block, generation});
  return out;
}

absl::Status BlockStore::CopyObject(const ObjectId* src, const ObjectId& dst, uint32_t block_size) {
  const uint32_t pages = PageCount(block_size);
  absl::MutexLock l(&LockFor(dst));  // src is the same block: the same lock
  // Whatever dst held goes first (a copy that never got used, or one being
  // redone): the block table names dst only after this returned.
  ASSIGN_OR_RETURN(auto held, pages_->Objects(dst.disk, dst.block, dst.block + 1));
  bool src_held = false;
  for (const auto& [block, generation] : held) {
    if (src != nullptr && (generation & ~kLinkGeneration) == src->generation) src_held = true;
    if ((generation & ~kStoreGenerations) == dst.generation) {
      const ObjectId marks = MarksOf(dst);
      RETURN_IF_ERROR(
          pages_->DropObject(marks.disk, marks.block, marks.generation, MarkPageCount(block_size)));
      RETURN_IF_ERROR(pages_->DropObject(dst.disk, dst.block, dst.generation, pages));
      RETURN_IF_ERROR(pages_->DropObject(dst.disk, dst.block, dst.generation | kLinkGeneration, 1));
    }
  }
  if (src == nullptr || !src_held) return absl::OkStatus();  // nothing there: zeros
  ASSIGN_OR_RETURN(const int depth, LinkDepth(*src));
  if (depth < kMaxLinkDepth) {
    std::string link;
    std::vector<PageMutation> batch;
    SetLink(dst, src->generation, &link, &batch);
    return pages_->Apply(batch);
  }
  // A chain this deep: a copy of what src reads as, page by page.
  std::vector<bool> present;
  std::string data;
  RETURN_IF_ERROR(ReadPagesUnlocked(*src, 0, pages, &present, &data));
  std::vector<PageMutation> batch;
  size_t at = 0;
  for (uint32_t p = 0; p < pages; ++p) {
    if (!present[p]) continue;
    PageMutation m;
    m.key = {dst.disk, dst.block, dst.generation, p};
    m.data = data.data() + at;
    at += kPage;
    if (AllZero(m.data, kPage)) continue;  // unlinked: absent reads as zeros
    m.crc = Crc32c(m.data, kPage);
    batch.push_back(m);
  }
  if (batch.empty()) return absl::OkStatus();
  return pages_->Apply(batch);
}

absl::StatusOr<bool> BlockStore::FillIfEmpty(const ObjectId& obj, const std::vector<bool>& present,
                                             absl::string_view data) {
  absl::MutexLock l(&LockFor(obj));
  ASSIGN_OR_RETURN(auto held, pages_->Objects(obj.disk, obj.block, obj.block + 1));
  for (const auto& [block, generation] : held) {
    if ((generation & ~kLinkGeneration) == obj.generation) return false;
  }
  std::vector<PageMutation> batch;
  size_t at = 0;
  for (uint32_t p = 0; p < present.size(); ++p) {
    if (!present[p]) continue;
    PageMutation m;
    m.key = {obj.disk, obj.block, obj.generation, p};
    m.data = data.data() + at;
    at += kPage;
    if (AllZero(m.data, kPage)) continue;  // thin stays thin
    m.crc = Crc32c(m.data, kPage);
    batch.push_back(m);
  }
  if (!batch.empty()) RETURN_IF_ERROR(pages_->Apply(batch));
  return true;
}

absl::Status BlockStore::ClearMarks(const ObjectId& obj, uint32_t block_size) {
  absl::MutexLock l(&LockFor(obj));
  const ObjectId marks = MarksOf(obj);
  return pages_->DropObject(marks.disk, marks.block, marks.generation, MarkPageCount(block_size));
}

absl::Status BlockStore::DropObject(const ObjectId& obj, uint32_t block_size) {
  const uint32_t pages = PageCount(block_size);
  absl::MutexLock l(&LockFor(obj));
  ASSIGN_OR_RETURN(const auto dependents, LinkedTo(obj));
  if (!dependents.empty()) {
    // obj's own pages, for the dependents that do not hold them.
    std::vector<PageKey> keys;
    for (uint32_t p = 0; p < pages; ++p) keys.push_back({obj.disk, obj.block, obj.generation, p});
    std::vector<std::optional<std::string>> mine;
    RETURN_IF_ERROR(pages_->Get(keys, &mine));
    ASSIGN_OR_RETURN(const auto next, LinkOf(obj, /*may_block=*/true));
    std::vector<char> page(kPage);
    for (uint64_t g : dependents) {
      const ObjectId dep{obj.disk, obj.block, g};
      std::vector<PageKey> theirs = keys;
      for (auto& k : theirs) k.generation = g;
      std::vector<std::optional<std::string>> held;
      RETURN_IF_ERROR(pages_->Get(theirs, &held));
      std::vector<std::string> taken;  // decoded pages, alive until Apply
      taken.reserve(pages);
      std::vector<PageMutation> batch;
      for (uint32_t p = 0; p < pages; ++p) {
        if (held[p] || !mine[p]) continue;
        RETURN_IF_ERROR(DecodePage(*mine[p], keys[p], page.data()));
        // With no link left, a zero page need not be kept.
        if (!next && AllZero(page.data(), kPage)) continue;
        taken.emplace_back(page.data(), kPage);
        PageMutation m;
        m.key = theirs[p];
        m.data = taken.back().data();
        m.crc = Crc32c(m.data, kPage);
        batch.push_back(m);
      }
      std::string link;
      SetLink(dep, next, &link, &batch);
      RETURN_IF_ERROR(pages_->Apply(batch));
    }
    // Durable before what they came from goes: a crash in between must
    // leave the dependents whole either way.
    RETURN_IF_ERROR(pages_->Sync());
  }
  const ObjectId marks = MarksOf(obj);
  RETURN_IF_ERROR(
      pages_->DropObject(marks.disk, marks.block, marks.generation, MarkPageCount(block_size)));
  RETURN_IF_ERROR(pages_->DropObject(obj.disk, obj.block, obj.generation | kLinkGeneration, 1));
  return pages_->DropObject(obj.disk, obj.block, obj.generation, pages);
}

namespace {
// The keys of the pages [offset, offset + length) touches (length > 0).
std::vector<PageKey> KeysOf(const ObjectId& obj, uint32_t offset, uint32_t length) {
  const uint32_t first = offset / kPage;
  const uint32_t last = (offset + length - 1) / kPage;
  std::vector<PageKey> keys;
  keys.reserve(last - first + 1);
  for (uint32_t p = first; p <= last; ++p) keys.push_back({obj.disk, obj.block, obj.generation, p});
  return keys;
}
}  // namespace

absl::Status BlockStore::PlanRead(const ObjectId& obj, uint32_t offset, uint32_t length,
                                  PagePlan* plan) {
  if (length == 0) return absl::InvalidArgumentError("empty read");
  std::vector<PageKey> keys = KeysOf(obj, offset, length);
  RETURN_IF_ERROR(pages_->PlanRead(keys, plan));
  // Pages the object does not hold: planned again from the object its link
  // names (FinishRead goes by each key's page, whatever its generation).
  ObjectId at = obj;
  for (int depth = 0;; ++depth) {
    bool missing = false;
    for (const auto& c : plan->crcs) missing = missing || !c;
    if (!missing) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto to, LinkOf(at, /*may_block=*/false));
    if (!to) return absl::OkStatus();
    if (depth > kMaxLinkDepth) return WouldBlock();  // the slow path says why
    at.generation = *to;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!plan->crcs[i]) keys[i].generation = *to;
    }
    *plan = PagePlan();
    RETURN_IF_ERROR(pages_->PlanRead(keys, plan));
  }
}

absl::Status BlockStore::FinishRead(uint32_t offset, uint32_t length, const PagePlan& plan,
                                    std::string* out) const {
  std::vector<const char*> src(plan.keys.size(), nullptr);
  for (const PagePlan::Run& r : plan.runs) {
    for (size_t k = 0; k < r.n; ++k) src[r.first + k] = plan.data.data() + r.at + k * kPage;
  }
  size_t base = out->size();
  out->resize(base + length);
  char* dst = out->data() + base;
  for (size_t i = 0; i < plan.keys.size(); ++i) {
    const PageKey& key = plan.keys[i];
    const uint32_t page_start = key.page * kPage;
    const uint32_t from = std::max(offset, page_start);
    const uint32_t to = std::min(offset + length, page_start + kPage);
    if (src[i] == nullptr) {
      memset(dst + (from - offset), 0, to - from);
      continue;
    }
    if (Crc32c(src[i], kPage) != *plan.crcs[i]) return Mismatch(key);
    memcpy(dst + (from - offset), src[i] + (from - page_start), to - from);
  }
  return absl::OkStatus();
}

// Reads take no lock: a write landing between a page's checksum lookup and
// its data read makes the page look bad, and a drop between them takes the
// object's file away (NOT_FOUND). Either is read again under the block's
// lock, where nothing can land in between: only then is it bad (DATA_LOSS).
// Without that, a pull from a source under writes failed again and again,
// and readers marked sound replicas stale. Without `may_block` the second
// read is left to a worker (WouldBlock()).
absl::Status BlockStore::Read(const ObjectId& obj, uint32_t offset, uint32_t length,
                              std::string* out, bool may_block) {
  const size_t base = out->size();
  absl::Status s = ReadUnlocked(obj, offset, length, out, may_block);
  if (!RaceMayExplain(s)) return s;
  out->resize(base);
  if (!may_block) return WouldBlock();
  absl::MutexLock l(&LockFor(obj));
  return LostUnderLock(ReadUnlocked(obj, offset, length, out, may_block));
}

absl::Status BlockStore::ReadUnlocked(const ObjectId& obj, uint32_t offset, uint32_t length,
                                      std::string* out, bool may_block) {
  if (length == 0) return absl::OkStatus();
  std::vector<PageKey> keys = KeysOf(obj, offset, length);
  std::vector<std::optional<std::string>> vals;
  RETURN_IF_ERROR(GetResolved(&keys, &vals, may_block));
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
