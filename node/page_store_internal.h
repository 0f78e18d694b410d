// Shared by the RocksDB-backed page stores: the 28-byte page key
// (docs/STORAGE.md), status translation and common RocksDB options.
#ifndef UKAI_NODE_PAGE_STORE_INTERNAL_H_
#define UKAI_NODE_PAGE_STORE_INTERNAL_H_

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "node/page_store.h"

namespace ukai::node {

constexpr size_t kPageKeySize = 28;

inline void PutBigEndian(char* p, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}
inline uint64_t GetBigEndian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// disk | block | generation | page, big-endian: a block's pages are adjacent
// and a disk is one key range.
inline std::string EncodePageKey(const PageKey& k) {
  std::string s(kPageKeySize, '\0');
  PutBigEndian(&s[0], k.disk, 8);
  PutBigEndian(&s[8], k.block, 8);
  PutBigEndian(&s[16], k.generation, 8);
  PutBigEndian(&s[24], k.page, 4);
  return s;
}
// Sorts before every page key of the object and after those of the objects before it.
inline std::string ObjectKeyPrefix(uint64_t disk, uint64_t block, uint64_t generation) {
  return EncodePageKey({disk, block, generation, 0}).substr(0, 24);
}
inline std::string DiskKeyPrefix(uint64_t disk) {
  std::string s(8, '\0');
  PutBigEndian(&s[0], disk, 8);
  return s;
}

inline void EncodeCrc(uint32_t crc, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
}
inline uint32_t DecodeCrc(const char* p) {
  uint32_t c = 0;
  for (int i = 0; i < 4; ++i) c |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return c;
}
// The stored-value form of a page: CRC then data.
inline std::string PageValue(const PageMutation& m) {
  std::string v(4 + 4096, '\0');
  EncodeCrc(m.crc, v.data());
  memcpy(v.data() + 4, m.data, 4096);
  return v;
}

inline absl::Status FromRocks(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrFormat("rocksdb %s: %s", what, s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  return absl::InternalError(msg);
}

// The memtable insert hint's key: the disk of a full page key. RocksDB 7.8
// also hands range deletions the hint of their start key's prefix although
// they go to another skip list, and aborts (or corrupts the memtable) on it;
// so range deletions must start at keys outside this domain: an object's
// 24-byte prefix (ObjectKeyPrefix) or a disk's 8 bytes (DiskKeyPrefix), never
// a 28-byte page key.
class PageKeyHint : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "ukai.PageKeyHint"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), 8);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() == kPageKeySize; }
};

// Options for a small-valued, point-lookup-heavy database.
inline rocksdb::Options IndexOptions() {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.compression = rocksdb::kNoCompression;  // guest data is often compressed or encrypted
  o.max_background_jobs = 2;
  o.enable_pipelined_write = true;
  // Keys arrive in runs of consecutive pages (a 1 MiB write is 256 of them).
  // With a per-disk insert hint the memtable's skip list puts each key next
  // to the previous one instead of searching from the top for it; those
  // searches were 13% of all CPU on 1 MiB writes (perf). RocksDB uses hints
  // only when one thread inserts a write group's batches.
  o.memtable_insert_with_hint_prefix_extractor = std::make_shared<PageKeyHint>();
  o.allow_concurrent_memtable_write = false;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(64u << 20);
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

// Looks up every key in one MultiGet; a missing key leaves nullopt. With
// `nowait`, from memory only: WouldBlock() if a key needs a disk read.
inline absl::Status MultiGetPages(rocksdb::DB* db, const std::vector<PageKey>& keys,
                                  std::vector<std::optional<std::string>>* values,
                                  bool nowait = false) {
  values->assign(keys.size(), std::nullopt);
  std::vector<std::string> enc;
  enc.reserve(keys.size());
  for (const auto& k : keys) enc.push_back(EncodePageKey(k));
  std::vector<rocksdb::Slice> slices(enc.begin(), enc.end());
  std::vector<std::string> out;
  rocksdb::ReadOptions ro;
  if (nowait) ro.read_tier = rocksdb::kBlockCacheTier;
  std::vector<rocksdb::Status> st = db->MultiGet(ro, slices, &out);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (st[i].IsNotFound()) continue;
    if (nowait && st[i].IsIncomplete()) return WouldBlock();
    if (!st[i].ok()) return FromRocks(st[i], "multiget");
    (*values)[i] = std::move(out[i]);
  }
  return absl::OkStatus();
}

// Pages stored per disk, in bytes (a key scan).
inline absl::StatusOr<std::map<uint64_t, uint64_t>> CountPagesPerDisk(rocksdb::DB* db) {
  std::map<uint64_t, uint64_t> out;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() == kPageKeySize) out[GetBigEndian(it->key().data(), 8)] += 4096;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "iterate");
  return out;
}

// Whether the index holds any key in [begin, end).
inline absl::StatusOr<bool> AnyKeyIn(rocksdb::DB* db, const std::string& begin,
                                     const std::string& end) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  it->Seek(begin);
  if (!it->status().ok()) return FromRocks(it->status(), "iterate");
  return it->Valid();
}

// PageStore::Objects over an index keyed by EncodePageKey: one seek per
// object found, past its pages, so the cost follows objects, not pages.
inline absl::StatusOr<std::vector<std::pair<uint64_t, uint64_t>>> ObjectsInRange(rocksdb::DB* db,
                                                                                 uint64_t disk,
                                                                                 uint64_t first,
                                                                                 uint64_t end) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  std::string seek = EncodePageKey({disk, first, 0, 0});
  for (it->Seek(seek); it->Valid(); it->Seek(seek)) {
    rocksdb::Slice k = it->key();
    if (k.size() != kPageKeySize || GetBigEndian(k.data(), 8) != disk) break;
    const uint64_t block = GetBigEndian(k.data() + 8, 8);
    const uint64_t generation = GetBigEndian(k.data() + 16, 8);
    if (block >= end) break;
    out.emplace_back(block, generation);
    if (generation == UINT64_MAX) {  // the next object is the next block's
      if (block == UINT64_MAX) break;
      seek = EncodePageKey({disk, block + 1, 0, 0});
    } else {
      seek = EncodePageKey({disk, block, generation + 1, 0});
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "iterate");
  return out;
}

}  // namespace ukai::node

#endif  // UKAI_NODE_PAGE_STORE_INTERNAL_H_
