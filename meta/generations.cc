#include "meta/generations.h"

namespace ukai::meta {
namespace {

bool AnySnapshotIn(const pb::DiskSpec& spec, uint64_t from, uint64_t until) {
  for (const auto& s : spec.snapshots()) {
    if (s.generation() >= from && s.generation() < until) return true;
  }
  return false;
}

BlockView StateView(uint64_t generation, bool inherited, bool clone) {
  if (inherited) return Unallocated(clone);
  return BlockView{BlockView::kObject, generation};
}

}  // namespace

BlockView ViewOf(const pb::BlockPtr& ptr, uint64_t at, bool clone) {
  if (at == kLiveView || ptr.generation() <= at) {
    return StateView(ptr.generation(), ptr.inherited(), clone);
  }
  for (int i = ptr.kept_size() - 1; i >= 0; --i) {
    const auto& k = ptr.kept(i);
    if (k.generation() <= at) return StateView(k.generation(), k.inherited(), clone);
  }
  return Unallocated(clone);  // the block was not allocated then
}

std::vector<uint64_t> OwnObjects(const pb::BlockPtr& ptr) {
  std::vector<uint64_t> out;
  for (const auto& k : ptr.kept()) {
    if (!k.inherited()) out.push_back(k.generation());
  }
  if (!ptr.inherited()) out.push_back(ptr.generation());
  return out;
}

bool NeedsNewObject(const pb::BlockPtr& ptr, const pb::DiskSpec& spec) {
  return ptr.inherited() || AnySnapshotIn(spec, ptr.generation(), UINT64_MAX);
}

void Advance(pb::BlockPtr* ptr, uint64_t generation, const pb::DiskSpec& spec) {
  if (AnySnapshotIn(spec, ptr->generation(), generation)) {
    auto* k = ptr->add_kept();
    k->set_generation(ptr->generation());
    k->set_inherited(ptr->inherited());
  }
  ptr->set_generation(generation);
  ptr->set_inherited(false);
  Prune(ptr, spec);
}

bool Prune(pb::BlockPtr* ptr, const pb::DiskSpec& spec) {
  const int n = ptr->kept_size();
  std::vector<pb::KeptObject> keep;
  for (int i = 0; i < n; ++i) {
    const uint64_t until = i + 1 < n ? ptr->kept(i + 1).generation() : ptr->generation();
    if (AnySnapshotIn(spec, ptr->kept(i).generation(), until)) keep.push_back(ptr->kept(i));
  }
  // An inherited state with nothing older reads as an unallocated block does.
  size_t first = 0;
  while (first < keep.size() && keep[first].inherited()) ++first;
  if (keep.size() - first == static_cast<size_t>(n)) return false;
  ptr->clear_kept();
  for (size_t i = first; i < keep.size(); ++i) *ptr->add_kept() = keep[i];
  return true;
}

bool ExclusiveTo(const pb::BlockPtr& ptr, const pb::DiskSpec& spec, uint64_t snap_generation) {
  if (ptr.generation() <= snap_generation) return false;  // the live disk reads it too
  for (int i = ptr.kept_size() - 1; i >= 0; --i) {
    const auto& k = ptr.kept(i);
    if (k.generation() > snap_generation) continue;
    if (k.inherited()) return false;
    const uint64_t until =
        i + 1 < ptr.kept_size() ? ptr.kept(i + 1).generation() : ptr.generation();
    int readers = 0;
    for (const auto& s : spec.snapshots()) {
      readers += s.generation() >= k.generation() && s.generation() < until;
    }
    return readers == 1;
  }
  return false;
}

const pb::Snapshot* FindSnapshot(const pb::DiskSpec& spec, const std::string& name) {
  for (const auto& s : spec.snapshots()) {
    if (s.name() == name) return &s;
  }
  return nullptr;
}

bool NewestSnapshot(const pb::DiskSpec& spec, uint64_t* generation) {
  if (spec.snapshots_size() == 0) return false;
  *generation = spec.snapshots(spec.snapshots_size() - 1).generation();
  return true;
}

}  // namespace ukai::meta
