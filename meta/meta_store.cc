#include "meta/meta_store.h"

#include "common/status.h"

namespace ukai::meta {

absl::Status EnsurePath(MetaStore& store, const std::string& path) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    auto r = store.Create(prefix, "");
    if (!r.ok() && !absl::IsAlreadyExists(r.status())) return r.status();
  }
  return absl::OkStatus();
}

absl::Status DeleteRecursive(MetaStore& store, const std::string& path) {
  auto kids = store.Children(path);
  if (absl::IsNotFound(kids.status())) return absl::OkStatus();
  if (!kids.ok()) return kids.status();
  for (const auto& k : *kids) RETURN_IF_ERROR(DeleteRecursive(store, path + "/" + k));
  absl::Status s = store.Delete(path);
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

}  // namespace ukai::meta
