#include "absl/synchronization/mutex.h"
#include "node/page_store.h"
#include "node/page_store_internal.h"

namespace ukai::node {

struct MemPageStore::State {
  absl::Mutex mu;
  // A mutation with its value copied (the caller's page buffer is gone later).
  struct Held {
    PageKey key;
    std::string value;
    bool erase;
  };
  // Durable content, and the batches applied since the last Sync in order.
  std::map<PageKey, std::string> durable ABSL_GUARDED_BY(mu);
  std::vector<std::vector<Held>> pending ABSL_GUARDED_BY(mu);

  static void ApplyTo(std::map<PageKey, std::string>& m, const std::vector<Held>& batch) {
    for (const auto& op : batch) {
      if (op.erase) {
        m.erase(op.key);
      } else {
        m[op.key] = op.value;
      }
    }
  }
  std::map<PageKey, std::string> Visible() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::map<PageKey, std::string> v = durable;
    for (const auto& b : pending) ApplyTo(v, b);
    return v;
  }
  void Settle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (const auto& b : pending) ApplyTo(durable, b);
    pending.clear();
  }
};

MemPageStore::MemPageStore() : state_(std::make_unique<State>()) {}
MemPageStore::~MemPageStore() = default;

absl::Status MemPageStore::Get(const std::vector<PageKey>& keys,
                               std::vector<std::optional<std::string>>* values) {
  absl::MutexLock l(&state_->mu);
  values->assign(keys.size(), std::nullopt);
  for (size_t i = 0; i < keys.size(); ++i) {
    // Newest pending batch wins.
    bool found = false;
    for (auto b = state_->pending.rbegin(); b != state_->pending.rend() && !found; ++b) {
      for (auto op = b->rbegin(); op != b->rend(); ++op) {
        if (op->key == keys[i]) {
          if (!op->erase) (*values)[i] = op->value;
          found = true;
          break;
        }
      }
    }
    if (found) continue;
    auto it = state_->durable.find(keys[i]);
    if (it != state_->durable.end()) (*values)[i] = it->second;
  }
  return absl::OkStatus();
}

absl::Status MemPageStore::Apply(const std::vector<PageMutation>& batch) {
  std::vector<State::Held> held;
  for (const auto& m : batch) held.push_back({m.key, m.erase ? "" : PageValue(m), m.erase});
  absl::MutexLock l(&state_->mu);
  state_->pending.push_back(std::move(held));
  if (state_->pending.size() > 64) {
    // Keep reads cheap: fold old batches; only the newest 64 stay droppable.
    State::ApplyTo(state_->durable, state_->pending.front());
    state_->pending.erase(state_->pending.begin());
  }
  return absl::OkStatus();
}

absl::Status MemPageStore::Sync() {
  absl::MutexLock l(&state_->mu);
  state_->Settle();
  return absl::OkStatus();
}

absl::Status MemPageStore::DropDisk(uint64_t disk) {
  absl::MutexLock l(&state_->mu);
  state_->Settle();
  auto it = state_->durable.lower_bound(PageKey{disk, 0, 0, 0});
  while (it != state_->durable.end() && it->first.disk == disk) it = state_->durable.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::map<uint64_t, uint64_t>> MemPageStore::DiskBytes() {
  absl::MutexLock l(&state_->mu);
  std::map<uint64_t, uint64_t> out;
  for (const auto& [k, v] : state_->Visible()) out[k.disk] += 4096;
  return out;
}

absl::StatusOr<std::vector<std::pair<uint64_t, uint64_t>>> MemPageStore::Objects(uint64_t disk,
                                                                                 uint64_t first,
                                                                                 uint64_t end) {
  absl::MutexLock l(&state_->mu);
  std::vector<std::pair<uint64_t, uint64_t>> out;
  const auto visible = state_->Visible();
  for (auto it = visible.lower_bound({disk, first, 0, 0});
       it != visible.end() && it->first.disk == disk && it->first.block < end; ++it) {
    std::pair<uint64_t, uint64_t> o{it->first.block, it->first.generation};
    if (out.empty() || out.back() != o) out.push_back(o);
  }
  return out;
}

void MemPageStore::DropUnsynced() {
  absl::MutexLock l(&state_->mu);
  state_->pending.clear();
}

bool MemPageStore::Corrupt(const PageKey& key, size_t byte) {
  absl::MutexLock l(&state_->mu);
  state_->Settle();
  auto it = state_->durable.find(key);
  if (it == state_->durable.end() || byte >= it->second.size()) return false;
  it->second[byte] ^= 0x5a;
  return true;
}

}  // namespace ukai::node
