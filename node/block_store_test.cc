// BlockStore over every PageStore: the same behaviour on RocksDB and in memory.
#include "node/block_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "node/page_cache_testing.h"

namespace ukai::node {
namespace {

class BlockStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() != "mem") {
      static int n = 0;
      dir_ = absl::StrCat(testing::TempDir(), "/ukai-bs-", getpid(), "-", n++);
      std::filesystem::remove_all(dir_);
      auto ps = GetParam() == "rocksdb" ? NewRocksDbPageStore(dir_) : NewExtentPageStore(dir_);
      ASSERT_TRUE(ps.ok()) << ps.status();
      store_ = std::make_unique<BlockStore>(std::move(*ps));
    } else {
      auto mem = std::make_unique<MemPageStore>();
      mem_ = mem.get();
      store_ = std::make_unique<BlockStore>(std::move(mem));
    }
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::string Read(ObjectId o, uint32_t off, uint32_t len) {
    std::string out;
    absl::Status s = store_->Read(o, off, len, &out);
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::string dir_;
  MemPageStore* mem_ = nullptr;
  std::unique_ptr<BlockStore> store_;
};

TEST_P(BlockStoreTest, UnwrittenRangesReadAsZeros) {
  EXPECT_EQ(Read({1, 0, 0}, 100, 9000), std::string(9000, '\0'));
  EXPECT_EQ(store_->DiskBytes()->size(), 0u);
}

TEST_P(BlockStoreTest, UnalignedWritesMergeWithNeighbours) {
  ObjectId o{1, 3, 0};
  ASSERT_TRUE(store_->Write(o, 0, std::string(12288, 'a')).ok());
  ASSERT_TRUE(store_->Write(o, 4000, std::string(300, 'b')).ok());  // crosses a page edge
  std::string want = std::string(4000, 'a') + std::string(300, 'b') + std::string(7988, 'a');
  EXPECT_EQ(Read(o, 0, 12288), want);
  EXPECT_EQ(Read(o, 4001, 10), std::string(10, 'b'));
}

TEST_P(BlockStoreTest, ObjectsAreIsolated) {
  ASSERT_TRUE(store_->Write({1, 0, 0}, 0, "disk1").ok());
  ASSERT_TRUE(store_->Write({2, 0, 0}, 0, "disk2").ok());
  ASSERT_TRUE(store_->Write({1, 1, 0}, 0, "block1").ok());
  EXPECT_EQ(Read({1, 0, 0}, 0, 5), "disk1");
  EXPECT_EQ(Read({2, 0, 0}, 0, 5), "disk2");
  EXPECT_EQ(Read({1, 1, 0}, 0, 6), "block1");
}

// Objects lists the objects holding data in a block range: every
// generation, no marks, nothing of other disks or of emptied objects.
TEST_P(BlockStoreTest, ObjectsListsWhatHoldsDataInARange) {
  ASSERT_TRUE(store_->Write({4, 1, 0}, 0, "one").ok());
  ASSERT_TRUE(store_->Write({4, 1, 5}, 9000, "one, later generation").ok());
  ASSERT_TRUE(store_->Write({4, 3, 0}, 4096 * 700, "three").ok());
  ASSERT_TRUE(store_->Write({4, 6, 0}, 512, std::string(512, 't'), /*track=*/true).ok());
  ASSERT_TRUE(store_->Write({4, 8, 0}, 0, "emptied").ok());
  ASSERT_TRUE(store_->Write({4, 8, 0}, 0, std::string(4096, '\0')).ok());
  ASSERT_TRUE(store_->Write({3, 2, 0}, 0, "other disk").ok());
  ASSERT_TRUE(store_->Write({5, 0, 0}, 0, "other disk").ok());
  auto list = [&](uint64_t first, uint64_t end) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    auto objects = store_->Objects(4, first, end);
    EXPECT_TRUE(objects.ok()) << objects.status();
    for (const auto& o : *objects) {
      EXPECT_EQ(o.disk, 4u);
      out.emplace_back(o.block, o.generation);
    }
    return out;
  };
  using V = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(list(0, 100), (V{{1, 0}, {1, 5}, {3, 0}, {6, 0}}));
  EXPECT_EQ(list(2, 6), (V{{3, 0}}));
  EXPECT_EQ(list(7, 100), V{});
}

TEST_P(BlockStoreTest, ZeroPagesAreNotStored) {
  ObjectId o{7, 0, 0};
  ASSERT_TRUE(store_->Write(o, 0, std::string(8192, 'x')).ok());
  EXPECT_EQ((*store_->DiskBytes())[7], 8192u);
  ASSERT_TRUE(store_->Write(o, 0, std::string(8192, '\0')).ok());
  EXPECT_EQ(store_->DiskBytes()->count(7), 0u);
  EXPECT_EQ(Read(o, 0, 8192), std::string(8192, '\0'));
}

TEST_P(BlockStoreTest, DropDiskRemovesOnlyThatDisk) {
  ASSERT_TRUE(store_->Write({1, 0, 0}, 0, std::string(4096, 'a')).ok());
  ASSERT_TRUE(store_->Write({2, 0, 0}, 0, std::string(4096, 'b')).ok());
  ASSERT_TRUE(store_->DropDisk(1).ok());
  EXPECT_EQ(Read({1, 0, 0}, 0, 4096), std::string(4096, '\0'));
  EXPECT_EQ(Read({2, 0, 0}, 0, 4096), std::string(4096, 'b'));
}

// Writes after a dropped object or disk, in the same disk and memtable: the
// index's memtable insert hints (page_store_internal.h) must not be used on
// the range deletions those drops write (RocksDB 7.8 aborted when they were).
TEST_P(BlockStoreTest, WritesGoOnAfterObjectsAndDisksAreDropped) {
  for (uint64_t b = 0; b < 4; ++b) {
    ASSERT_TRUE(store_->Write({1, b, 0}, 0, std::string(65536, static_cast<char>('a' + b))).ok());
  }
  ASSERT_TRUE(store_->DropObject({1, 1, 0}, 1u << 20).ok());
  ASSERT_TRUE(store_->DropDisk(2).ok());
  for (uint64_t b = 0; b < 4; ++b) {
    ASSERT_TRUE(store_->Write({1, b, 0}, 4096, std::string(65536, 'z')).ok());
    ASSERT_TRUE(store_->Write({2, b, 0}, 0, std::string(8192, 'y')).ok());
  }
  ASSERT_TRUE(store_->DropObject({1, 2, 0}, 1u << 20).ok());
  ASSERT_TRUE(store_->Write({1, 2, 0}, 0, std::string(4096, 'q')).ok());
  EXPECT_EQ(Read({1, 0, 0}, 0, 8192), std::string(4096, 'a') + std::string(4096, 'z'));
  EXPECT_EQ(Read({1, 1, 0}, 0, 8192), std::string(4096, '\0') + std::string(4096, 'z'));
  EXPECT_EQ(Read({1, 2, 0}, 0, 8192), std::string(4096, 'q') + std::string(4096, '\0'));
  EXPECT_EQ(Read({2, 3, 0}, 0, 8192), std::string(8192, 'y'));
}

TEST_P(BlockStoreTest, RandomizedAgainstAModel) {
  const uint32_t kBlock = 256 << 10;
  uint32_t seed = testing::UnitTest::GetInstance()->random_seed();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 rng(seed);
  std::string model(kBlock, '\0');
  ObjectId o{9, 4, 0};
  for (int i = 0; i < 300; ++i) {
    uint32_t off = rng() % kBlock;
    bool read = rng() % 3 == 0;  // reads long enough to scan the index
    uint32_t len = 1 + rng() % std::min<uint32_t>(kBlock - off, read ? 70000 : 20000);
    if (read) {
      EXPECT_EQ(Read(o, off, len), model.substr(off, len)) << "op " << i;
    } else {
      std::string d(len, '\0');
      char c = static_cast<char>(rng() % 4 == 0 ? 0 : 'a' + rng() % 26);
      for (auto& ch : d) ch = c == 0 ? 0 : static_cast<char>(c + rng() % 3);
      ASSERT_TRUE(store_->Write(o, off, d).ok());
      model.replace(off, len, d);
    }
  }
  EXPECT_EQ(Read(o, 0, kBlock), model);
}

// Long reads walk the index as one key range (extent store): holes, zeroed
// pages and the neighbouring objects in key order must not leak into them.
TEST_P(BlockStoreTest, LongReadsSeeHolesAndStopAtTheObjectEdge) {
  ObjectId o{9, 4, 1};
  std::string model(64 * 4096, '\0');
  for (size_t p = 0; p < 64; ++p) {
    if (p >= 40 && p < 48) continue;  // never written
    model.replace(p * 4096, 4096, std::string(4096, static_cast<char>('A' + p % 26)));
  }
  ASSERT_TRUE(store_->Write(o, 0, model).ok());
  model.replace(10 * 4096, 3 * 4096, std::string(3 * 4096, '\0'));  // zeroed: deleted
  ASSERT_TRUE(store_->Write(o, 10 * 4096, std::string(3 * 4096, '\0')).ok());
  // Neighbours on both sides in key order.
  ASSERT_TRUE(store_->Write({9, 4, 0}, 63 * 4096, std::string(4096, 'x')).ok());
  ASSERT_TRUE(store_->Write({9, 4, 2}, 0, std::string(8192, 'y')).ok());
  ASSERT_TRUE(store_->Write({9, 5, 0}, 0, std::string(4096, 'z')).ok());
  EXPECT_EQ(Read(o, 0, 64 * 4096), model);
  EXPECT_EQ(Read(o, 8 * 4096 + 100, 40 * 4096), model.substr(8 * 4096 + 100, 40 * 4096));
  EXPECT_EQ(Read(o, 60 * 4096, 8 * 4096), model.substr(60 * 4096) + std::string(4 * 4096, '\0'));
}

// Background copy: the destination keeps every sector a tracked write marked,
// whatever order pulled pages and writes arrive in.
TEST_P(BlockStoreTest, PulledPagesNeverOverwriteTrackedWrites) {
  ObjectId src{3, 1, 0}, dst{3, 1, 0};
  BlockStore& source = *store_;  // one store plays both roles: other disk ids
  dst.disk = 4;
  std::string want(16 * 4096, '\0');
  for (size_t p = 0; p < 16; ++p) {
    if (p == 12) continue;  // a hole at the source
    want.replace(p * 4096, 4096, std::string(4096, static_cast<char>('a' + p)));
  }
  ASSERT_TRUE(source.Write(src, 0, want).ok());

  // Before the pull: whole pages, two sectors of one page, a zeroed page,
  // and a sector in the source's hole.
  ASSERT_TRUE(store_->Write(dst, 2 * 4096, std::string(8192, 'W'), /*track=*/true).ok());
  ASSERT_TRUE(store_->Write(dst, 5 * 4096 + 512, std::string(1024, 'P'), true).ok());
  ASSERT_TRUE(store_->Write(dst, 7 * 4096, std::string(4096, '\0'), true).ok());
  ASSERT_TRUE(store_->Write(dst, 12 * 4096 + 3584, std::string(512, 'H'), true).ok());
  want.replace(2 * 4096, 8192, std::string(8192, 'W'));
  want.replace(5 * 4096 + 512, 1024, std::string(1024, 'P'));
  want.replace(7 * 4096, 4096, std::string(4096, '\0'));
  want.replace(12 * 4096 + 3584, 512, std::string(512, 'H'));

  std::vector<bool> present;
  std::string pages;
  ASSERT_TRUE(source.ReadPages(src, 0, 16, &present, &pages).ok());
  EXPECT_EQ(std::count(present.begin(), present.end(), true), 15);
  EXPECT_EQ(pages.size(), 15u * 4096);
  // Pulled in two pieces, with a tracked write landing between them.
  std::vector<bool> head(present.begin(), present.begin() + 8),
      tail(present.begin() + 8, present.end());
  size_t head_bytes = 4096 * std::count(head.begin(), head.end(), true);
  ASSERT_TRUE(store_->ApplyPulled(dst, 0, head, pages.substr(0, head_bytes)).ok());
  ASSERT_TRUE(store_->Write(dst, 9 * 4096, std::string(512, 'L'), true).ok());
  want.replace(9 * 4096, 512, std::string(512, 'L'));
  ASSERT_TRUE(store_->ApplyPulled(dst, 8, tail, pages.substr(head_bytes)).ok());
  EXPECT_EQ(Read(dst, 0, 16 * 4096), want);

  // Pulled again (a resumed copy): nothing changes.
  ASSERT_TRUE(store_->ApplyPulled(dst, 0, present, pages).ok());
  EXPECT_EQ(Read(dst, 0, 16 * 4096), want);

  // Once the marks are cleared, a pull takes the source's pages.
  ASSERT_TRUE(store_->ClearMarks(dst, 64 * 4096).ok());
  ASSERT_TRUE(store_->ApplyPulled(dst, 0, present, pages).ok());
  EXPECT_EQ(Read(dst, 0, 2 * 4096), Read(src, 0, 2 * 4096));
  EXPECT_EQ(Read(dst, 2 * 4096, 4096), Read(src, 2 * 4096, 4096));

  // Malformed input: data that does not match the flags.
  EXPECT_EQ(store_->ApplyPulled(dst, 0, present, pages.substr(1)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(BlockStoreTest, TrackedWritesMustCoverWholeSectors) {
  EXPECT_EQ(store_->Write({5, 0, 0}, 100, std::string(512, 'x'), true).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Write({5, 0, 0}, 512, std::string(100, 'x'), true).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->Write({5, 0, 0}, 100, std::string(100, 'x')).ok());  // untracked: any range
}

// A 32 MiB block has two mark pages: a write across their edge marks both.
TEST_P(BlockStoreTest, MarksSpanMarkPages) {
  ObjectId src{6, 0, 0}, dst{7, 0, 0};
  const uint32_t edge = 4096 * 4096;  // page 4096, the first of the second mark page
  ASSERT_TRUE(store_->Write(src, edge - 8192, std::string(16384, 's')).ok());
  ASSERT_TRUE(store_->Write(dst, edge - 4096, std::string(8192, 'w'), true).ok());
  std::vector<bool> present;
  std::string pages;
  ASSERT_TRUE(store_->ReadPages(src, 4094, 4, &present, &pages).ok());
  ASSERT_TRUE(store_->ApplyPulled(dst, 4094, present, pages).ok());
  EXPECT_EQ(Read(dst, edge - 8192, 16384),
            std::string(4096, 's') + std::string(8192, 'w') + std::string(4096, 's'));
  ASSERT_TRUE(store_->DropObject(dst, 32u << 20).ok());
  EXPECT_EQ(Read(dst, edge - 8192, 16384), std::string(16384, '\0'));
  EXPECT_EQ(store_->DiskBytes()->count(7), 0u);  // marks gone too
}

// Writers on four threads overwrite pages of eight blocks of one disk at
// random (4 KiB pages, some partial), while objects of that disk are dropped
// and written again and two readers read and pull whole blocks: no read
// during the writes sees a page fail its checksum, and afterwards every page
// reads back as the last write to it left it.
TEST_P(BlockStoreTest, ConcurrentWritersKeepChecksumsInStepWithData) {
  constexpr uint64_t kBlocks = 8;
  constexpr uint32_t kPages = 64;
  std::vector<std::string> model(kBlocks, std::string(kPages * 4096, '\0'));
  std::vector<absl::Mutex> mu(kBlocks);  // the model, per block, in write order
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 3000; ++i) {
        const uint64_t b = rng() % kBlocks;
        absl::MutexLock l(&mu[b]);
        if (rng() % 500 == 0) {
          ASSERT_TRUE(store_->DropObject({9, b, 0}, kPages * 4096).ok());
          model[b].assign(kPages * 4096, '\0');
          continue;
        }
        const uint32_t page = rng() % kPages;
        const uint32_t off = page * 4096 + (rng() % 4 == 0 ? 512 * (rng() % 8) : 0);
        const uint32_t len = std::min<uint32_t>(kPages * 4096 - off, 4096 * (1 + rng() % 3));
        std::string data(len, static_cast<char>('a' + rng() % 26));
        ASSERT_TRUE(store_->Write({9, b, 0}, off, data).ok());
        model[b].replace(off, len, data);
      }
    });
  }
  // Readers meanwhile: a page being overwritten is never called bad.
  std::atomic<int> writers{4};
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      while (writers.load() > 0) {
        const uint64_t b = rng() % kBlocks;
        std::string got;
        absl::Status s = store_->Read({9, b, 0}, 0, kPages * 4096, &got);
        ASSERT_TRUE(s.ok()) << "read of block " << b << " during writes: " << s;
        std::vector<bool> present;
        s = store_->ReadPages({9, b, 0}, 0, kPages, &present, &got);
        ASSERT_TRUE(s.ok()) << "pull of block " << b << " during writes: " << s;
      }
    });
  }
  for (int t = 0; t < 4; ++t) {
    threads[t].join();
    --writers;
  }
  for (size_t t = 4; t < threads.size(); ++t) threads[t].join();
  for (uint64_t b = 0; b < kBlocks; ++b) {
    std::string got;
    absl::Status s = store_->Read({9, b, 0}, 0, kPages * 4096, &got);
    ASSERT_TRUE(s.ok()) << "block " << b << ": " << s;
    EXPECT_TRUE(got == model[b]) << "block " << b;
  }
}

// One object written whole and dropped again and again while two threads
// read and pull it: a read finds the whole object or none of it, never an
// error (the extent store's file goes away between index and file reads).
// Copy-on-write (CopyObject) links the new object to the old one: it reads
// the same, takes writes of its own (zeros too) without touching the old
// one, and lists as an object even before its first write.
TEST_P(BlockStoreTest, CopiesAreLinksThatReadThroughAndWriteApart) {
  constexpr uint32_t kBlock = 64 * 1024;
  const ObjectId g1{1, 3, 1}, g2{1, 3, 2};
  const std::string old = std::string(kBlock / 2, 'o') + std::string(kBlock / 2, 'p');
  ASSERT_TRUE(store_->Write(g1, 0, old).ok());
  const uint64_t before = store_->DiskBytes()->at(1);
  ASSERT_TRUE(store_->CopyObject(&g1, g2, kBlock).ok());
  EXPECT_EQ(store_->DiskBytes()->at(1) - before, 4096u);  // the link alone, not 64 KiB
  EXPECT_EQ(Read(g2, 0, kBlock), old);
  auto objects = store_->Objects(1, 3, 4);
  ASSERT_TRUE(objects.ok());
  ASSERT_EQ(objects->size(), 2u);
  EXPECT_EQ((*objects)[1].generation, 2u);
  // A partial page merges with the page read through; a zero page is kept.
  ASSERT_TRUE(store_->Write(g2, 100, "new").ok());
  ASSERT_TRUE(store_->Write(g2, 8192, std::string(4096, '\0')).ok());
  std::string want = old;
  want.replace(100, 3, "new");
  want.replace(8192, 4096, std::string(4096, '\0'));
  EXPECT_EQ(Read(g2, 0, kBlock), want);
  EXPECT_EQ(Read(g1, 0, kBlock), old);
  // The background-copy and scrub views resolve the link too.
  std::vector<bool> present;
  std::string data;
  ASSERT_TRUE(store_->ReadPages(g2, 0, kBlock / 4096, &present, &data).ok());
  EXPECT_EQ(std::count(present.begin(), present.end(), true), kBlock / 4096);
  EXPECT_EQ(data, want);
  std::vector<uint32_t> crcs, bad;
  ASSERT_TRUE(store_->VerifyPages(g2, 0, kBlock / 4096, &crcs, &present, &bad).ok());
  EXPECT_TRUE(bad.empty());
  EXPECT_NE(crcs[5], 0u);  // read through to g1's page
}

// Dropping an object others link to first gives them the pages they read
// from it; chains of links fold the same way, and a chain too deep is
// copied instead of linked.
TEST_P(BlockStoreTest, DroppingALinkedObjectKeepsItsCopiesWhole) {
  constexpr uint32_t kBlock = 32 * 1024;
  std::vector<ObjectId> g;
  std::vector<std::string> want;
  std::string now(kBlock, '\0');
  for (uint64_t gen = 1; gen <= 7; ++gen) {
    g.push_back({2, 0, gen});
    if (gen > 1) {
      ASSERT_TRUE(store_->CopyObject(&g[gen - 2], g.back(), kBlock).ok());
    }
    const std::string page(4096, static_cast<char>('a' + gen));
    now.replace((gen % 8) * 4096, 4096, page);
    ASSERT_TRUE(store_->Write(g.back(), (gen % 8) * 4096, page).ok());
    want.push_back(now);
  }
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(Read(g[i], 0, kBlock), want[i]) << i;
  // Drop the middle ones and the first: what is left reads as before.
  for (size_t i : {3u, 1u, 0u, 4u}) ASSERT_TRUE(store_->DropObject(g[i], kBlock).ok());
  for (size_t i : {2u, 5u, 6u}) EXPECT_EQ(Read(g[i], 0, kBlock), want[i]) << i;
  EXPECT_EQ(Read(g[0], 0, kBlock), std::string(kBlock, '\0'));
  // Once nothing links to anything, only real pages are left.
  ASSERT_TRUE(store_->DropObject(g[2], kBlock).ok());
  ASSERT_TRUE(store_->DropObject(g[5], kBlock).ok());
  EXPECT_EQ(Read(g[6], 0, kBlock), want[6]);
  EXPECT_EQ(store_->DiskBytes()->at(2), 7u * 4096);  // pages 1-7, no link left
}

// A copy of an object that does not exist here reads as zeros and costs
// nothing; a redone copy replaces what the earlier one left.
TEST_P(BlockStoreTest, CopiesOfNothingAndRedoneCopies) {
  constexpr uint32_t kBlock = 16 * 1024;
  const ObjectId g1{3, 0, 1}, g2{3, 0, 2};
  ASSERT_TRUE(store_->CopyObject(&g1, g2, kBlock).ok());
  EXPECT_TRUE(store_->Objects(3, 0, 1)->empty());
  ASSERT_TRUE(store_->Write(g2, 0, "stray").ok());  // a write whose switch never came
  ASSERT_TRUE(store_->Write(g1, 0, std::string(kBlock, 'z')).ok());
  ASSERT_TRUE(store_->CopyObject(&g1, g2, kBlock).ok());
  EXPECT_EQ(Read(g2, 0, kBlock), std::string(kBlock, 'z'));
  ASSERT_TRUE(store_->CopyObject(nullptr, g2, kBlock).ok());
  EXPECT_EQ(Read(g2, 0, kBlock), std::string(kBlock, '\0'));
}

TEST_P(BlockStoreTest, ReadsDuringDropsSeeTheObjectOrNothing) {
  constexpr uint32_t kPages = 16;
  const ObjectId obj{10, 3, 0};
  std::atomic<bool> done{false};
  std::thread churn([&] {
    for (int i = 0; i < 1500; ++i) {
      ASSERT_TRUE(store_->Write(obj, 0, std::string(kPages * 4096, 'd')).ok());
      ASSERT_TRUE(store_->DropObject(obj, kPages * 4096).ok());
    }
    done = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        std::string got;
        absl::Status s = store_->Read(obj, 0, kPages * 4096, &got);
        ASSERT_TRUE(s.ok()) << "read: " << s;
        for (uint32_t p = 0; p < kPages; ++p) {
          const char c = got[p * 4096];
          ASSERT_TRUE(c == 'd' || c == '\0') << "page " << p;
          ASSERT_EQ(got.substr(p * 4096, 4096), std::string(4096, c)) << "page " << p << " mixed";
        }
        std::vector<bool> present;
        s = store_->ReadPages(obj, 0, kPages, &present, &got);
        ASSERT_TRUE(s.ok()) << "pull: " << s;
        std::vector<uint32_t> crcs, bad;
        s = store_->VerifyPages(obj, 0, kPages, &crcs, &present, &bad);
        ASSERT_TRUE(s.ok()) << "verify: " << s;
        ASSERT_TRUE(bad.empty()) << bad.size() << " pages called bad";
      }
    });
  }
  churn.join();
  for (auto& r : readers) r.join();
}

INSTANTIATE_TEST_SUITE_P(PageStores, BlockStoreTest, ::testing::Values("mem", "rocksdb", "extent"));

// Stores with files behind them: what was synced survives a reopen.
class PersistentBlockStoreTest : public BlockStoreTest {};

TEST_P(PersistentBlockStoreTest, SurvivesReopenAfterSync) {
  ASSERT_TRUE(store_->Write({3, 1, 0}, 100, std::string(9000, 'q')).ok());
  ASSERT_TRUE(store_->Sync().ok());
  store_.reset();
  auto ps = GetParam() == "rocksdb" ? NewRocksDbPageStore(dir_) : NewExtentPageStore(dir_);
  ASSERT_TRUE(ps.ok()) << ps.status();
  store_ = std::make_unique<BlockStore>(std::move(*ps));
  EXPECT_EQ(Read({3, 1, 0}, 100, 9000), std::string(9000, 'q'));
  EXPECT_EQ(Read({3, 1, 0}, 0, 100), std::string(100, '\0'));
}

INSTANTIATE_TEST_SUITE_P(OnDisk, PersistentBlockStoreTest, ::testing::Values("rocksdb", "extent"));

// A BlockStore over the extent store in a directory of its own.
class ExtentBlockStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(testing::TempDir(), "/ukai-extent-", getpid());
    std::filesystem::remove_all(dir_);
    auto ps = NewExtentPageStore(dir_);
    ASSERT_TRUE(ps.ok()) << ps.status();
    store_ = std::make_unique<BlockStore>(std::move(*ps));
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<BlockStore> store_;
};

// A read asked not to wait answers from memory or says WouldBlock, never
// anything else; the waiting read then answers in full.
TEST_F(ExtentBlockStoreTest, NoWaitReadsServeCachedPagesAndDeferTheRest) {
  BlockStore& store = *store_;
  ASSERT_TRUE(store.Write({1, 0, 0}, 0, std::string(65536, 'n')).ok());
  std::string out;
  ASSERT_TRUE(store.Read({1, 0, 0}, 4096, 8192, &out, /*may_block=*/false).ok());
  EXPECT_EQ(out, std::string(8192, 'n'));
  // Clean pages dropped from the page cache: the no-wait read must not wait.
  ASSERT_TRUE(store.Sync().ok());
  const int resident = DropCachedPages(dir_ + "/objects");  // of the 16 written
  ASSERT_GE(resident, 0);
  out.clear();
  absl::Status s = store.Read({1, 0, 0}, 4096, 8192, &out, /*may_block=*/false);
  if (resident == 0) {
    EXPECT_TRUE(IsWouldBlock(s)) << s;
  } else if (resident == 16) {
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(out, std::string(8192, 'n'));
  } else {
    EXPECT_TRUE(s.ok() || IsWouldBlock(s)) << s;
  }
  out.clear();
  ASSERT_TRUE(store.Read({1, 0, 0}, 4096, 8192, &out).ok());
  EXPECT_EQ(out, std::string(8192, 'n'));
}

// A read carried out by the caller (PlanRead, the runs read into the plan,
// FinishRead) gives exactly what Read gives, holes included, and a page that
// reads back different from what was stored is refused, never returned.
TEST_F(ExtentBlockStoreTest, PlannedReadsMatchReadAndRefuseBadPages) {
  BlockStore& store = *store_;
  const ObjectId kObj{1, 0, 0};
  std::string a(10000, 'a'), b(4096, 'b');
  ASSERT_TRUE(store.Write({1, 0, 0}, 100, a).ok());
  ASSERT_TRUE(store.Write({1, 0, 0}, 6 * 4096, b).ok());  // pages 3-5 stay holes
  auto carry_out = [](PagePlan* plan) { ASSERT_TRUE(ReadPlanned(plan, /*nowait=*/false).ok()); };
  for (auto [off, len] :
       {std::pair<uint32_t, uint32_t>{0, 7 * 4096}, {50, 5000}, {9000, 20000}, {3 * 4096, 4096}}) {
    PagePlan plan;
    ASSERT_TRUE(store.PlanRead({1, 0, 0}, off, len, &plan).ok());
    carry_out(&plan);
    std::string want, got = "x";  // FinishRead appends, as Read does
    ASSERT_TRUE(store.Read({1, 0, 0}, off, len, &want).ok());
    ASSERT_TRUE(store.FinishRead(off, len, plan, &got).ok());
    EXPECT_EQ(got, "x" + want) << off << "+" << len;
  }
  // A linked copy plans the pages it lacks from the object it links to.
  ASSERT_TRUE(store.CopyObject(&kObj, {1, 0, 5}, 64 * 1024).ok());
  ASSERT_TRUE(store.Write({1, 0, 5}, 4096, std::string(4096, 'c')).ok());
  {
    PagePlan linked;
    ASSERT_TRUE(store.PlanRead({1, 0, 5}, 0, 7 * 4096, &linked).ok());
    carry_out(&linked);
    std::string want, got;
    ASSERT_TRUE(store.Read({1, 0, 5}, 0, 7 * 4096, &want).ok());
    ASSERT_TRUE(store.FinishRead(0, 7 * 4096, linked, &got).ok());
    EXPECT_EQ(got, want);
    EXPECT_EQ(want.substr(4096, 4096), std::string(4096, 'c'));
    EXPECT_EQ(want.substr(0, 100), std::string(100, '\0'));
    EXPECT_EQ(want.substr(100, 100), std::string(100, 'a'));
  }
  PagePlan plan;
  ASSERT_TRUE(store.PlanRead({1, 0, 0}, 0, 7 * 4096, &plan).ok());
  EXPECT_EQ(plan.runs.size(), 2u);  // pages 0-2 and page 6: one file read each
  carry_out(&plan);
  plan.data[4096 + 7] ^= 1;
  std::string out;
  EXPECT_TRUE(absl::IsDataLoss(store.FinishRead(0, 7 * 4096, plan, &out)));
  // A store that keeps no page files has no plan to give.
  BlockStore mem(std::make_unique<MemPageStore>());
  EXPECT_TRUE(IsWouldBlock(mem.PlanRead({1, 0, 0}, 0, 4096, &plan)));
}

TEST(MemBlockStoreTest, PowerLossDropsOnlyUnsyncedWrites) {
  auto mem = std::make_unique<MemPageStore>();
  MemPageStore* pages = mem.get();
  BlockStore store(std::move(mem));
  ASSERT_TRUE(store.Write({1, 0, 0}, 0, std::string(4096, 'a')).ok());
  ASSERT_TRUE(store.Sync().ok());
  ASSERT_TRUE(store.Write({1, 0, 0}, 0, std::string(4096, 'b')).ok());
  pages->DropUnsynced();
  std::string out;
  ASSERT_TRUE(store.Read({1, 0, 0}, 0, 4096, &out).ok());
  EXPECT_EQ(out, std::string(4096, 'a'));
}

TEST(MemBlockStoreTest, CorruptPageIsNeverReturned) {
  auto mem = std::make_unique<MemPageStore>();
  MemPageStore* pages = mem.get();
  BlockStore store(std::move(mem));
  ASSERT_TRUE(store.Write({1, 2, 0}, 0, std::string(8192, 'a')).ok());
  ASSERT_TRUE(pages->Corrupt(PageKey{1, 2, 0, 1}, 100));
  std::string out;
  absl::Status s = store.Read({1, 2, 0}, 0, 8192, &out);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("block 2 page 1"), std::string::npos);
  out.clear();
  EXPECT_TRUE(store.Read({1, 2, 0}, 0, 4096, &out).ok());            // the good page still reads
  EXPECT_TRUE(absl::IsDataLoss(store.Write({1, 2, 0}, 4097, "x")));  // no merge into rot
}

}  // namespace
}  // namespace ukai::node
