// The ZooKeeper tree (docs/ZOOKEEPER.md) and the limits of the metadata model.
#ifndef UKAI_META_LAYOUT_H_
#define UKAI_META_LAYOUT_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace ukai::meta {

constexpr uint32_t kChunkBlocks = 1024;  // block pointers per chunk znode
constexpr uint32_t kDefaultBlockSize = 4u << 20;
constexpr uint32_t kMinBlockSize = 64u << 10;
constexpr uint32_t kMaxBlockSize = 64u << 20;
constexpr uint64_t kMaxDiskSize = 1ull << 50;  // 1 PiB
constexpr uint32_t kPageSize = 4096;           // unit of node storage and checksums

// Paths under a root (default "/ukai").
class Paths {
 public:
  explicit Paths(std::string root) : root_(std::move(root)) {}
  std::string nodes() const { return root_ + "/nodes"; }
  std::string node(const std::string& id) const { return nodes() + "/" + id; }
  std::string node_state(const std::string& id) const { return node(id) + "/state"; }
  std::string live() const { return root_ + "/live"; }
  std::string live(const std::string& id) const { return live() + "/" + id; }
  std::string names() const { return root_ + "/names"; }
  std::string name(const std::string& n) const { return names() + "/" + n; }
  std::string ids() const { return root_ + "/ids"; }
  std::string disks() const { return root_ + "/disks"; }
  std::string disk(uint64_t id) const { return absl::StrCat(disks(), "/", id); }
  std::string blocks(uint64_t id) const { return disk(id) + "/blocks"; }
  std::string chunk(uint64_t id, uint64_t c) const { return absl::StrCat(blocks(id), "/", c); }
  std::string writer(uint64_t id) const { return disk(id) + "/writer"; }
  std::string open(uint64_t id) const { return disk(id) + "/open"; }
  std::string open(uint64_t id, const std::string& host) const { return open(id) + "/" + host; }
  std::string disk_job(uint64_t id) const { return disk(id) + "/job"; }
  std::string jobs() const { return root_ + "/jobs"; }
  std::string frontends() const { return root_ + "/frontends"; }
  std::string frontend(const std::string& host) const { return frontends() + "/" + host; }
  std::string job(const std::string& id) const { return jobs() + "/" + id; }
  std::string job_runner(const std::string& id) const { return job(id) + "/runner"; }

 private:
  std::string root_;
};

}  // namespace ukai::meta

#endif  // UKAI_META_LAYOUT_H_
