// PageStore on RocksDB. Key: 28 bytes, big-endian disk | block | generation |
// page, so one block's pages are adjacent and a disk is one key range
// (docs/STORAGE.md). Writes go to the WAL unsynced; Sync() syncs the WAL.
// RocksDB statuses become absl statuses here and nowhere else.
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "absl/strings/str_format.h"
#include "node/page_store.h"
#include "node/page_store_internal.h"

namespace ukai::node {
namespace {

class RocksDbPageStore : public PageStore {
 public:
  explicit RocksDbPageStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  ~RocksDbPageStore() override {
    if (db_) (void)db_->Close();
  }

  absl::Status Get(const std::vector<PageKey>& keys,
                   std::vector<std::optional<std::string>>* values) override {
    values->assign(keys.size(), std::nullopt);
    if (keys.size() == 1) {  // the common 4 KiB read: skip MultiGet's setup
      std::string v;
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), EncodePageKey(keys[0]), &v);
      if (s.IsNotFound()) return absl::OkStatus();
      if (!s.ok()) return FromRocks(s, "get");
      (*values)[0] = std::move(v);
      return absl::OkStatus();
    }
    return MultiGetPages(db_.get(), keys, values);
  }

  absl::Status Apply(const std::vector<PageMutation>& batch) override {
    rocksdb::WriteBatch wb;
    for (const auto& m : batch) {
      std::string k = EncodePageKey(m.key);
      char crc[4];
      EncodeCrc(m.crc, crc);
      rocksdb::Slice parts[2] = {rocksdb::Slice(crc, 4), rocksdb::Slice(m.data, 4096)};
      rocksdb::Slice key(k);
      rocksdb::Status s = m.erase
                              ? wb.Delete(k)
                              : wb.Put(rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2));
      if (!s.ok()) return FromRocks(s, "batch");
    }
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &wb), "write");
  }

  absl::Status Sync() override { return FromRocks(db_->SyncWAL(), "sync wal"); }

  absl::Status DropDisk(uint64_t disk) override {
    std::string b = DiskKeyPrefix(disk), e = DiskKeyPrefix(disk + 1);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->DeleteRange(wo, db_->DefaultColumnFamily(), b, e), "delete range");
  }

  absl::StatusOr<std::map<uint64_t, uint64_t>> DiskBytes() override {
    return CountPagesPerDisk(db_.get());
  }
  absl::StatusOr<std::vector<std::pair<uint64_t, uint64_t>>> Objects(uint64_t disk, uint64_t first,
                                                                     uint64_t end) override {
    return ObjectsInRange(db_.get(), disk, first, end);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PageStore>> NewRocksDbPageStore(const std::string& dir,
                                                               const RocksDbOptions& opts) {
  rocksdb::Options o = IndexOptions();
  o.write_buffer_size = 64u << 20;
  o.max_write_buffer_number = 4;
  if (opts.blob_files) {
    o.enable_blob_files = true;
    o.min_blob_size = 1024;
    o.blob_file_size = 256u << 20;
    o.enable_blob_garbage_collection = true;
    o.blob_garbage_collection_age_cutoff = 0.25;
  }
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(opts.block_cache_bytes);
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, dir, &raw);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrFormat("cannot open store %s: %s", dir, s.ToString()));
  }
  return std::unique_ptr<PageStore>(new RocksDbPageStore(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace ukai::node
