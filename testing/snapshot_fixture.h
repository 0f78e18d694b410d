// The fixture of the snapshot and clone tests (client/snapshot_test.cc on
// the data path, control/snapshot_jobs_test.cc for rollback and flatten):
// VolumeTest with helpers to write, open and snapshot.
#ifndef UKAI_TESTING_SNAPSHOT_FIXTURE_H_
#define UKAI_TESTING_SNAPSHOT_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>

#include "testing/volume_fixture.h"

namespace ukai::harness {

constexpr uint32_t kBlock = 64 << 10;

inline std::string Pattern(size_t len, uint32_t seed) {
  std::string s(len, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class SnapshotTest : public VolumeTest {
 protected:
  // Writes `data` at `off` and checks it went.
  void Put(Volume& v, uint64_t off, const std::string& data) {
    absl::Status s = v.Write(off, data.data(), data.size());
    ASSERT_TRUE(s.ok()) << s;
  }
  std::shared_ptr<Volume> Open(Cluster* host, const std::string& name, bool writable) {
    auto v = host->Open(name, writable);
    EXPECT_TRUE(v.ok()) << name << ": " << v.status();
    return v.ok() ? *v : nullptr;
  }
  // Disk "d" of 4 blocks with block 0 written (`v0`) by a writer on a new
  // host, then snapshot d@s1: where a copy-on-write test starts.
  struct Snapped {
    pb::DiskSpec d;
    Cluster* host;
    std::shared_ptr<Volume> vol;
  };
  Snapped WrittenThenSnapshotted(const std::string& v0) {
    Snapped out{CreateDisk("d", 4 * kBlock, kBlock), NewHost("h1"), nullptr};
    out.vol = Open(out.host, "d", true);
    Put(*out.vol, 0, v0);
    Snapshot("d", "s1");
    return out;
  }
};

}  // namespace ukai::harness

#endif  // UKAI_TESTING_SNAPSHOT_FIXTURE_H_
