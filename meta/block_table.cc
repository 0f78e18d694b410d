// The block-table half of Catalog: chunk allocation, replica state changes
// and the writer epoch. These are the only metadata writes of the data path.
#include <random>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/catalog.h"

namespace ukai::meta {
namespace {
// A pause of 0 to `max_us` microseconds, drawn per thread.
absl::Duration Jitter(int max_us) {
  thread_local std::mt19937 rng(std::random_device{}());
  return absl::Microseconds(std::uniform_int_distribution<int>(0, max_us)(rng));
}
}  // namespace

absl::StatusOr<std::optional<VersionedChunk>> Catalog::ReadChunk(uint64_t id, uint64_t chunk,
                                                                 WatchFn watch) {
  auto v = store_->Get(paths_.chunk(id, chunk), std::move(watch));
  if (absl::IsNotFound(v.status())) return std::optional<VersionedChunk>();
  if (!v.ok()) return v.status();
  VersionedChunk out;
  if (!out.chunk.ParseFromString(v->data)) {
    return absl::DataLossError("corrupt block chunk " + paths_.chunk(id, chunk));
  }
  // Every reader indexes a chunk by block % kChunkBlocks: a short record
  // (truncated, or written by a stranger) is refused here, once for all.
  if (out.chunk.blocks_size() != static_cast<int>(kChunkBlocks)) {
    LOG_ERROR("block chunk %s holds %d block pointers, not %d: refused", paths_.chunk(id, chunk),
              out.chunk.blocks_size(), kChunkBlocks);
    return absl::DataLossError(absl::StrFormat("corrupt block chunk %s: %d block pointers, not %d",
                                               paths_.chunk(id, chunk), out.chunk.blocks_size(),
                                               kChunkBlocks));
  }
  out.version = v->version;
  return std::optional<VersionedChunk>(std::move(out));
}

absl::StatusOr<VersionedChunk> Catalog::AllocateChunk(const pb::DiskSpec& spec, uint64_t chunk,
                                                      const std::vector<std::string>& replicas) {
  VersionedChunk out;
  // New blocks begin at the current generation (a snapshot older than the
  // chunk reads them as never written); a clone's read through to its parent.
  pb::BlockPtr ptr;
  ptr.set_generation(spec.generation());
  ptr.set_inherited(spec.has_parent());
  for (const auto& n : replicas) {
    auto* r = ptr.add_replicas();
    r->set_node(n);
    r->set_state(pb::CLEAN);
  }
  for (uint32_t i = 0; i < kChunkBlocks; ++i) *out.chunk.add_blocks() = ptr;
  auto r = store_->Create(paths_.chunk(spec.id(), chunk), out.chunk.SerializeAsString());
  if (r.ok()) return out;
  if (absl::IsAlreadyExists(r.status())) {
    ASSIGN_OR_RETURN(auto existing, ReadChunk(spec.id(), chunk));
    if (existing) return *existing;
  }
  if (absl::IsNotFound(r.status())) {
    return absl::NotFoundError(absl::StrFormat("disk '%s' was deleted", spec.name()));
  }
  return r.status();
}

absl::StatusOr<pb::DiskSpec> Catalog::UpdateChunk(uint64_t id, uint64_t c,
                                                  const ChunkChange& change) {
  return UpdateChunkWithSpec(
      id, c, [&](const pb::DiskSpec&, pb::BlockChunk* chunk) { return change(chunk); });
}

absl::StatusOr<pb::DiskSpec> Catalog::UpdateChunkWithSpec(uint64_t id, uint64_t c,
                                                          const SpecChunkChange& change,
                                                          pb::BlockChunk* chunk_out) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    ASSIGN_OR_RETURN(auto spec, GetSpec(id));
    ASSIGN_OR_RETURN(auto chunk, ReadChunk(id, c));
    if (!chunk) return absl::NotFoundError(absl::StrFormat("disk %d: no chunk %d", id, c));
    ASSIGN_OR_RETURN(bool changed, change(spec.spec, &chunk->chunk));
    if (!changed) {
      if (chunk_out != nullptr) *chunk_out = std::move(chunk->chunk);
      return spec.spec;
    }
    spec.spec.set_layout_version(spec.spec.layout_version() + 1);
    absl::Status s = store_->Multi(
        {Op::Set(paths_.chunk(id, c), chunk->chunk.SerializeAsString(), chunk->version),
         Op::Set(paths_.disk(id), spec.spec.SerializeAsString(), spec.version)});
    if (absl::IsAborted(s)) {
      // Lost to another change of the disk: a short random pause, growing,
      // so that a crowd of them does not collide again in lockstep.
      absl::SleepFor(Jitter(200 << std::min(attempt, 6)));
      continue;
    }
    RETURN_IF_ERROR(s);
    if (chunk_out != nullptr) *chunk_out = std::move(chunk->chunk);
    return spec.spec;
  }
  return absl::AbortedError(absl::StrFormat("disk %d chunk %d: too much contention", id, c));
}

absl::StatusOr<pb::DiskSpec> Catalog::MarkStale(uint64_t id, uint64_t block,
                                                const std::string& node) {
  const uint32_t i = block % kChunkBlocks;
  auto spec =
      UpdateChunk(id, block / kChunkBlocks, [&](pb::BlockChunk* chunk) -> absl::StatusOr<bool> {
        bool changed = false;
        for (auto& r : *chunk->mutable_blocks(static_cast<int>(i))->mutable_replicas()) {
          if (r.node() == node && r.state() != pb::STALE) {
            r.set_state(pb::STALE);
            changed = true;
          }
        }
        return changed;
      });
  if (absl::IsNotFound(spec.status()) && GetSpec(id).ok()) {
    return absl::InternalError(absl::StrFormat("disk %d block %d: no chunk", id, block));
  }
  return spec;
}

absl::StatusOr<uint64_t> Catalog::TakeWriterEpoch(uint64_t id, const std::string& host,
                                                  const std::string& site,
                                                  const std::string& identity) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto v = store_->Get(paths_.writer(id));
    if (absl::IsNotFound(v.status())) {
      return absl::NotFoundError(absl::StrFormat("disk id %d does not exist", id));
    }
    RETURN_IF_ERROR(v.status());
    pb::WriterRecord w;
    if (!w.ParseFromString(v->data)) return absl::DataLossError("corrupt writer record");
    w.set_epoch(w.epoch() + 1);
    w.set_host(host);
    w.set_site(site);
    w.set_identity(identity);
    w.set_since_ms(static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())));
    auto r = store_->Set(paths_.writer(id), w.SerializeAsString(), v->version);
    if (absl::IsAborted(r.status())) continue;
    RETURN_IF_ERROR(r.status());
    return w.epoch();
  }
  return absl::AbortedError(absl::StrFormat("disk %d: writer epoch contended", id));
}

}  // namespace ukai::meta
