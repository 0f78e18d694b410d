#include "client/include/ukai/cluster.h"

#include <unistd.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/cluster_internal.h"
#include "client/node_pool.h"
#include "client/volume_impl.h"
#include "common/channel.h"
#include "common/log.h"
#include "common/status.h"
#include "common/units.h"
#include "meta/generations.h"
#include "security/transport.h"

namespace ukai::client {
namespace {

class ClusterImpl;

// What Open returns: a handle on the shared VolumeImpl of a disk.
class Handle : public Volume {
 public:
  Handle(ClusterImpl* cluster, std::shared_ptr<VolumeImpl> impl, bool writable)
      : cluster_(cluster), impl_(std::move(impl)), writable_(writable) {}
  ~Handle() override;
  DiskAttr attr() const override { return impl_->attr(); }
  uint64_t size() const override { return impl_->size(); }
  absl::Status Read(uint64_t offset, size_t len, char* out) override {
    return impl_->Read(offset, len, out);
  }
  void ReadAsync(uint64_t offset, size_t len, char* out, Done done) override {
    impl_->ReadAsync(offset, len, out, std::move(done));
  }
  absl::Status Write(uint64_t offset, const char* data, size_t len) override {
    if (!writable_) return ReadOnlyError("volume opened read-only");
    return impl_->Write(offset, data, len);
  }
  void WriteAsync(uint64_t offset, const char* data, size_t len, Done done) override {
    if (!writable_) return done(ReadOnlyError("volume opened read-only"));
    impl_->WriteAsync(offset, data, len, std::move(done));
  }
  absl::Status Flush() override { return impl_->Flush(); }
  absl::StatusOr<std::vector<uint64_t>> DataBlocks() override { return impl_->DataBlocks(); }
  absl::StatusOr<std::vector<uint64_t>> ChangedBlocks(const std::string& since) override {
    return impl_->ChangedBlocks(since);
  }

 private:
  ClusterImpl* cluster_;
  std::shared_ptr<VolumeImpl> impl_;
  const bool writable_;
};

// A send blocked on a node that stopped reading fails like an RPC that timed out.
wire::WireClientOptions IoOptions(const ClusterOptions& o,
                                  std::shared_ptr<wire::WireSecurity> security) {
  wire::WireClientOptions io;
  io.security = std::move(security);
  io.connect_timeout = absl::Milliseconds(std::min(o.rpc_timeout_ms, 2000));
  io.send_timeout = absl::Milliseconds(o.rpc_timeout_ms);
  io.site = o.site;
  io.local_dir = o.run_dir;
  return io;
}

class ClusterImpl : public Cluster {
 public:
  ClusterImpl(ClusterOptions opts, std::unique_ptr<meta::MetaStore> store, ChannelFactory channels,
              std::shared_ptr<wire::WireSecurity> wire)
      : opts_(std::move(opts)),
        store_(std::move(store)),
        catalog_(store_.get(), opts_.root),
        pool_(&catalog_, opts_.site, opts_.host, std::move(channels),
              IoOptions(opts_, std::move(wire))) {}
  ~ClusterImpl() override {
    guard_.Kill();
    async_.ops.WaitIdle();  // their callbacks use the pool and catalog
  }

  absl::Status Start() {
    auto root = store_->Get(opts_.root);
    if (absl::IsNotFound(root.status())) {
      return absl::NotFoundError("no UKAI cluster under " + opts_.root + " in ZooKeeper " +
                                 opts_.zk);
    }
    RETURN_IF_ERROR(root.status());
    RETURN_IF_ERROR(pool_.Start());
    store_->SetSessionListener([this] { RecreateOpenRecords(); });
    return WatchNames();
  }

  const ClusterOptions& options() const override { return opts_; }

  absl::StatusOr<std::vector<std::string>> ListDisks() override { return catalog_.ListNames(); }

  absl::StatusOr<std::vector<std::string>> ListSnapshots(const std::string& disk) override {
    ASSIGN_OR_RETURN(pb::DiskSpec spec, catalog_.GetByName(disk));
    std::vector<std::string> out;
    for (const auto& s : spec.snapshots()) out.push_back(s.name());
    return out;
  }

  absl::StatusOr<DiskAttr> Stat(const std::string& name) override {
    ASSIGN_OR_RETURN(DiskRef ref, ParseDiskRef(name));
    ASSIGN_OR_RETURN(pb::DiskSpec spec, catalog_.GetByName(ref.disk));
    {
      absl::MutexLock l(&mu_);
      auto it = volumes_.find({spec.id(), ref.snapshot});
      if (it != volumes_.end()) {
        if (auto v = it->second.lock()) return v->attr();  // watched: fresher than a read
      }
    }
    if (!ref.snapshot.empty()) {
      const pb::Snapshot* s = meta::FindSnapshot(spec, ref.snapshot);
      if (s == nullptr) {
        return absl::NotFoundError(
            absl::StrFormat("disk '%s' has no snapshot '%s'", ref.disk, ref.snapshot));
      }
      return DiskAttr{spec.id(),       name, s->size(),      spec.block_size(),
                      s->created_ms(), true, s->generation()};
    }
    return DiskAttr{spec.id(), spec.name(), spec.size(), spec.block_size(), spec.created_ms()};
  }

  void OnChange(std::function<void()> fn) override {
    absl::MutexLock l(&mu_);
    listener_ = std::move(fn);
  }

  absl::StatusOr<std::shared_ptr<Volume>> Open(const std::string& name, bool writable) override {
    ASSIGN_OR_RETURN(DiskRef ref, ParseDiskRef(name));
    if (writable && !ref.snapshot.empty()) {
      return ReadOnlyError("snapshot " + name + " is read-only");
    }
    ASSIGN_OR_RETURN(uint64_t id, catalog_.LookupName(ref.disk));
    const VolumeKey key{id, ref.snapshot};
    std::shared_ptr<VolumeImpl> impl;
    {
      absl::MutexLock l(&mu_);
      impl = volumes_[key].lock();
    }
    if (!impl) {
      impl = std::make_shared<VolumeImpl>(
          &catalog_, &pool_, &opts_, id, [this] { Notify(); }, &async_, ref.snapshot);
      absl::Status s = impl->Init();
      if (absl::IsNotFound(s)) {
        return absl::NotFoundError(ref.snapshot.empty() ? "no disk named '" + name + "'"
                                                        : std::string(s.message()));
      }
      RETURN_IF_ERROR(s);
      absl::MutexLock l(&mu_);
      auto existing = volumes_[key].lock();
      if (existing) {
        impl = existing;  // lost a race with another Open: share theirs
      } else {
        volumes_[key] = impl;
      }
    }
    if (writable) RETURN_IF_ERROR(AcquireWrite(id));
    return std::shared_ptr<Volume>(std::make_shared<Handle>(this, impl, writable));
  }

  void ReleaseWrite(VolumeImpl* impl) {
    uint64_t id = impl->attr().id;
    {
      absl::MutexLock l(&mu_);
      if (--writers_[id] > 0) return;
      writers_.erase(id);
    }
    absl::Status s = impl->Flush();
    if (!s.ok()) LOG_WARN("disk %d: flush on close: %s", id, s.ToString());
    impl->ReleaseWriter();
    s = store_->Delete(catalog_.paths().open(id, opts_.host));
    if (!s.ok() && !absl::IsNotFound(s))
      LOG_WARN("disk %d: removing open record: %s", id, s.ToString());
  }

 private:
  absl::Status AcquireWrite(uint64_t id) {
    {
      absl::MutexLock l(&mu_);
      if (writers_[id]++ > 0) return absl::OkStatus();
    }
    absl::Status s = CreateOpenRecord(id);
    if (!s.ok()) {
      absl::MutexLock l(&mu_);
      if (--writers_[id] == 0) writers_.erase(id);
    }
    return s;
  }

  absl::Status CreateOpenRecord(uint64_t id) {
    pb::OpenRecord rec;
    rec.set_host(opts_.host);
    rec.set_site(opts_.site);
    rec.set_since_ms(static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())));
    auto r = store_->Create(catalog_.paths().open(id, opts_.host), rec.SerializeAsString(),
                            meta::CreateMode::kEphemeral);
    if (absl::IsNotFound(r.status())) return absl::NotFoundError("disk was deleted");
    if (absl::IsAlreadyExists(r.status())) return absl::OkStatus();
    return r.status();
  }

  void RecreateOpenRecords() {
    std::vector<uint64_t> ids;
    {
      absl::MutexLock l(&mu_);
      for (auto& [id, n] : writers_) ids.push_back(id);
    }
    for (uint64_t id : ids) {
      absl::Status s = CreateOpenRecord(id);
      if (!s.ok()) LOG_WARN("disk %d: re-creating open record: %s", id, s.ToString());
    }
    Notify();
  }

  absl::Status WatchNames() {
    auto r = catalog_.ListNames(guard_.Wrap([this] {
      absl::Status s = WatchNames();
      if (!s.ok()) LOG_WARN("watching disk names: %s", s.ToString());
      Notify();
    }));
    return r.status();
  }

  void Notify() {
    std::function<void()> fn;
    {
      absl::MutexLock l(&mu_);
      fn = listener_;
    }
    if (fn) fn();
  }

  const ClusterOptions opts_;
  std::unique_ptr<meta::MetaStore> store_;
  meta::Catalog catalog_;
  NodePool pool_;
  AsyncIo async_;  // after pool_: destroyed first, waited for in the destructor
  absl::Mutex mu_;
  using VolumeKey = std::pair<uint64_t, std::string>;  // disk id, snapshot ("": the disk)
  std::map<VolumeKey, std::weak_ptr<VolumeImpl>> volumes_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, int> writers_ ABSL_GUARDED_BY(mu_);  // writable handles per disk
  std::function<void()> listener_ ABSL_GUARDED_BY(mu_);
  LifetimeGuard guard_;
};

Handle::~Handle() {
  if (writable_) cluster_->ReleaseWrite(impl_.get());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Cluster>> ConnectCluster(const ClusterOptions& in,
                                                        std::unique_ptr<meta::MetaStore> store,
                                                        ChannelFactory channels,
                                                        std::shared_ptr<wire::WireSecurity> wire) {
  ClusterOptions opts = in;
  if (opts.host.empty()) {
    char name[256] = {};
    gethostname(name, sizeof(name) - 1);
    opts.host = absl::StrCat(name, "-", getpid());
  }
  auto c = std::make_unique<ClusterImpl>(std::move(opts), std::move(store), std::move(channels),
                                         std::move(wire));
  RETURN_IF_ERROR(c->Start());
  return std::unique_ptr<Cluster>(std::move(c));
}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Connect(const ClusterOptions& opts) {
  ASSIGN_OR_RETURN(auto security,
                   security::TransportSecurity::FromFlags(opts.program, opts.tls_dir,
                                                          opts.insecure_plaintext, SystemClock()));
  ASSIGN_OR_RETURN(auto store,
                   meta::NewZkMetaStore(opts.zk, security->zk_auth(), opts.zk_session_ms));
  ClusterOptions with_identity = opts;
  with_identity.identity = security->plaintext() ? "" : security->tls()->self.who.ToString();
  return ConnectCluster(with_identity, std::move(store), security->Channels(), security->wire());
}

}  // namespace ukai::client
