#include "node/disk_registry.h"

#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"

namespace ukai::node {

namespace {
// Lookups a second of disk ids above the newest listed one.
constexpr int kMaxUnlistedLookups = 100;
}  // namespace

absl::Status DiskRegistry::Start() {
  RETURN_IF_ERROR(WatchList());
  std::set<uint64_t> ids;
  {
    absl::MutexLock l(&mu_);
    ids = listed_;
  }
  for (uint64_t id : ids) {
    absl::Status s = Refresh(id, Arm::kBoth);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  ASSIGN_OR_RETURN(auto stored, store_->DiskBytes());
  for (const auto& [id, bytes] : stored) {
    ASSIGN_OR_RETURN(bool exists, Exists(id));
    if (!exists) {
      LOG_INFO("disk %d: gone from the catalog; dropping %d bytes", id, bytes);
      RETURN_IF_ERROR(store_->DropDisk(id));
    }
  }
  return absl::OkStatus();
}

absl::Status DiskRegistry::Refresh(uint64_t id, Arm arm) {
  // A watch re-arms only itself, so each disk has at most one pending watch
  // on its spec and one on its writer record.
  meta::WatchFn spec_watch, writer_watch;
  if (arm == Arm::kBoth || arm == Arm::kSpec) {
    spec_watch = guard_.Wrap([this, id] {
      // A deleted disk re-arms nothing: a watch on a missing znode stays.
      absl::Status s = catalog_->GetSpec(id).status();
      if (s.ok()) s = Refresh(id, Arm::kSpec);
      if (absl::IsNotFound(s))
        OnGone(id);
      else if (!s.ok())
        LOG_WARN("disk %d: refresh failed: %s", id, s.ToString());
    });
  }
  if (arm == Arm::kBoth || arm == Arm::kWriter) {
    writer_watch = guard_.Wrap([this, id] { (void)Refresh(id, Arm::kWriter); });
  }
  auto spec = catalog_->GetSpec(id, std::move(spec_watch));
  if (!spec.ok()) return spec.status();
  auto writer = catalog_->store().Get(catalog_->paths().writer(id), std::move(writer_watch));
  pb::WriterRecord w;
  if (writer.ok()) w.ParseFromString(writer->data);
  absl::MutexLock l(&mu_);
  auto [it, inserted] = disks_.try_emplace(id);
  Disk& d = it->second;
  // Versions only move forward, whatever order refreshes finish in.
  if (spec->spec.layout_version() >= d.spec.layout_version()) d.spec = spec->spec;
  if (w.epoch() >= d.epoch) {  // the holder of the newest epoch
    d.epoch = w.epoch();
    d.writer = w.identity();
  }
  return absl::OkStatus();
}

absl::Status DiskRegistry::WatchList() {
  ASSIGN_OR_RETURN(auto ids, catalog_->ListDiskIds(guard_.Wrap([this] {
    if (absl::Status s = WatchList(); !s.ok()) LOG_WARN("listing disks: %s", s.ToString());
  })));
  absl::MutexLock l(&mu_);
  listed_ = std::set<uint64_t>(ids.begin(), ids.end());
  listed_ok_ = true;
  return absl::OkStatus();
}

absl::Status DiskRegistry::CheckUnknown(uint64_t id) {
  while (true) {
    absl::Duration wait;
    {
      absl::MutexLock l(&mu_);
      if (!listed_ok_ || listed_.count(id) > 0) return absl::OkStatus();
      if (!listed_.empty() && id <= *listed_.rbegin()) {
        return absl::NotFoundError(absl::StrFormat("disk %d does not exist", id));
      }
      const absl::Time now = absl::Now();
      if (now - lookups_since_ >= absl::Seconds(1)) {
        lookups_since_ = now;
        lookups_ = 0;
      }
      if (++lookups_ <= kMaxUnlistedLookups) return absl::OkStatus();
      wait = lookups_since_ + absl::Seconds(1) - now;
    }
    // Over the rate: this request waits for the next second, never fails;
    // ZooKeeper sees at most kMaxUnlistedLookups of them a second.
    absl::SleepFor(wait);
  }
}

void DiskRegistry::OnGone(uint64_t id) {
  {
    absl::MutexLock l(&mu_);
    disks_.erase(id);
  }
  absl::Status s = store_->DropDisk(id);
  if (s.ok()) {
    LOG_INFO("disk %d: deleted; data dropped", id);
  } else {
    LOG_WARN("disk %d: dropping data failed: %s", id, s.ToString());
  }
}

absl::StatusOr<bool> DiskRegistry::Exists(uint64_t id) {
  auto spec = catalog_->GetSpec(id);
  if (absl::IsNotFound(spec.status())) return false;
  if (!spec.ok()) return spec.status();
  return spec->spec.state() == pb::DiskSpec::READY;
}

Admission& Admission::operator=(Admission&& o) noexcept {
  if (this != &o) {
    Release();
    registry_ = o.registry_;
    disk_ = o.disk_;
    version_ = o.version_;
    geometry_ = o.geometry_;
    o.registry_ = nullptr;
  }
  return *this;
}

void Admission::Release() {
  if (registry_ != nullptr) registry_->Release(disk_, version_);
  registry_ = nullptr;
}

void DiskRegistry::Release(uint64_t id, uint64_t version) {
  absl::MutexLock l(&mu_);
  auto it = disks_.find(id);
  if (it == disks_.end()) return;  // the disk is gone; so is its count
  auto v = it->second.in_flight.find(version);
  if (v != it->second.in_flight.end() && --v->second == 0) it->second.in_flight.erase(v);
}

absl::StatusOr<DiskGeometry> DiskRegistry::Admit(const pb::IoHeader& hdr, bool write) {
  return AdmitImpl(hdr, write, /*hold=*/false, Caller{});
}

absl::StatusOr<Admission> DiskRegistry::AdmitIo(const pb::IoHeader& hdr, bool write,
                                                const Caller& who) {
  ASSIGN_OR_RETURN(DiskGeometry g, AdmitImpl(hdr, write, /*hold=*/true, who));
  Admission a;
  a.registry_ = this;
  a.disk_ = hdr.disk_id();
  a.version_ = hdr.layout_version();
  a.geometry_ = g;
  return a;
}

absl::Status DiskRegistry::Fence(uint64_t id, uint64_t layout_version, absl::Duration timeout) {
  bool known;
  {
    absl::MutexLock l(&mu_);
    auto it = disks_.find(id);
    known = it != disks_.end() && it->second.spec.layout_version() >= layout_version;
  }
  if (!known) {
    absl::Status s = Refresh(id, Arm::kNone);
    if (absl::IsNotFound(s))
      return absl::NotFoundError(absl::StrFormat("disk %d does not exist", id));
    RETURN_IF_ERROR(s);
  }
  absl::MutexLock l(&mu_);
  auto it = disks_.find(id);
  if (it == disks_.end()) return absl::NotFoundError(absl::StrFormat("disk %d does not exist", id));
  if (it->second.spec.layout_version() < layout_version) {
    return absl::FailedPreconditionError(
        absl::StrFormat("disk %d: layout version %d is not in ZooKeeper (it has %d)", id,
                        layout_version, it->second.spec.layout_version()));
  }
  struct Arg {
    DiskRegistry* self;
    uint64_t id, version;
  } arg{this, id, layout_version};
  auto drained = +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    auto d = a->self->disks_.find(a->id);
    return d == a->self->disks_.end() || d->second.in_flight.empty() ||
           d->second.in_flight.begin()->first >= a->version;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(drained, &arg), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrFormat("disk %d: requests under layouts older than %d still running after %s", id,
                        layout_version, absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

// Errors never say the current epoch: knowing it is half of posing as the writer.
absl::Status DiskRegistry::Decide(uint64_t id, const Disk& d, const pb::IoHeader& hdr, bool write,
                                  const Caller& who) {
  if (d.spec.state() != pb::DiskSpec::READY) {
    return absl::NotFoundError(absl::StrFormat("disk %d is being deleted", id));
  }
  if (hdr.layout_version() < d.spec.layout_version()) {
    return StaleLayoutError(absl::StrFormat("disk %d: stale layout version %d (node has %d)", id,
                                            hdr.layout_version(), d.spec.layout_version()));
  }
  if (!write) return absl::OkStatus();
  if (hdr.epoch() == 0 || hdr.epoch() < d.epoch) {
    return FencedError(absl::StrFormat("disk %d: writer epoch %d is fenced", id, hdr.epoch()));
  }
  if (hdr.epoch() > d.epoch) {
    return FencedError(
        absl::StrFormat("disk %d: writer epoch %d was never taken", id, hdr.epoch()));
  }
  if (!who.writer.empty() && who.writer != d.writer) {
    return FencedError(
        absl::StrFormat("disk %d: %s does not hold the writer epoch it names", id, who.writer));
  }
  return absl::OkStatus();
}

absl::StatusOr<DiskGeometry> DiskRegistry::AdmitImpl(const pb::IoHeader& hdr, bool write, bool hold,
                                                     const Caller& who) {
  const uint64_t id = hdr.disk_id();
  for (int pass = 0; pass < 2; ++pass) {
    bool refresh = false;
    {
      absl::MutexLock l(&mu_);
      auto it = disks_.find(id);
      if (it == disks_.end()) {
        refresh = true;
      } else {
        Disk& d = it->second;
        if (hdr.layout_version() > d.spec.layout_version() || (write && hdr.epoch() > d.epoch)) {
          refresh = true;
        }
        if (!refresh || pass == 1) {
          RETURN_IF_ERROR(Decide(id, d, hdr, write, who));
          if (hold) ++d.in_flight[hdr.layout_version()];
          return DiskGeometry{d.spec.size(), d.spec.block_size(), d.spec.generation()};
        }
      }
    }
    if (refresh) {
      bool known;
      {
        absl::MutexLock l(&mu_);
        known = disks_.count(id) > 0;
      }
      if (!known) {
        // Watches only for a disk that exists: a missing one would leave a
        // watch behind for ever.
        RETURN_IF_ERROR(CheckUnknown(id));
        auto spec = catalog_->GetSpec(id);
        if (absl::IsNotFound(spec.status())) {
          return absl::NotFoundError(absl::StrFormat("disk %d does not exist", id));
        }
        RETURN_IF_ERROR(spec.status());
      }
      absl::Status s = Refresh(id, known ? Arm::kNone : Arm::kBoth);
      if (absl::IsNotFound(s)) {
        return absl::NotFoundError(absl::StrFormat("disk %d does not exist", id));
      }
      RETURN_IF_ERROR(s);
    }
  }
  return absl::InternalError("unreachable");
}

}  // namespace ukai::node
