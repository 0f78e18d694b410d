// Relocator::RunScrub: the SCRUB job (docs/ARCHITECTURE.md, "Scrub").
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/generations.h"
#include "node/relocator.h"

namespace ukai::node {
namespace {

using meta::kChunkBlocks;
using meta::OwnObjects;
constexpr uint64_t kBatch = 32;      // blocks between progress updates
constexpr int kMaxFindings = 100;    // lines kept in the job record

pb::IoHeader Hdr(uint64_t disk, uint64_t layout) {
  pb::IoHeader h;
  h.set_disk_id(disk);
  h.set_layout_version(layout);
  return h;
}

// Pages of `a` and `b` (both answered for one object) that differ: stored on
// one only, or with different checksums.
std::vector<uint32_t> Differing(const pb::ChecksumsResponse& a, const pb::ChecksumsResponse& b) {
  std::vector<uint32_t> out;
  const int n = std::min(a.crcs_size(), b.crcs_size());
  for (int i = 0; i < n; ++i) {
    const bool pa = static_cast<size_t>(i) < a.present().size() && a.present()[i];
    const bool pb_ = static_cast<size_t>(i) < b.present().size() && b.present()[i];
    if (pa != pb_ || (pa && a.crcs(i) != b.crcs(i))) out.push_back(static_cast<uint32_t>(i));
  }
  return out;
}

}  // namespace

absl::Status Relocator::RunScrub(pb::JobRecord* job) {
  const std::string id = job->id();
  const uint64_t disk = job->disk_id();
  ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) { r->set_runner(self_); }));
  LOG_INFO("job %s: scrubbing disk %s (%d) from block %d", id, job->disk_name(), disk,
           job->next_block());
  ASSIGN_OR_RETURN(auto spec, catalog_->GetSpec(disk));
  const uint64_t nblocks = (spec.spec.size() + spec.spec.block_size() - 1) / spec.spec.block_size();
  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(disk));
  if (job->blocks_total() == 0 || job->blocks_done() == 0) {
    uint64_t blocks = 0;
    for (const auto& [c, chunk] : chunks) {
      blocks += std::min<uint64_t>(kChunkBlocks, nblocks > c * kChunkBlocks ? nblocks - c * kChunkBlocks : 0);
    }
    ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) { r->set_blocks_total(blocks); }));
  }

  // Counted per batch, then added to the record with the cursor.
  uint64_t checked = 0, bad = 0, mismatched = 0, done = 0;
  std::vector<std::string> findings;
  bool marked_any = false;
  auto save = [&](uint64_t next) -> absl::Status {
    ASSIGN_OR_RETURN(*job, catalog_->UpdateJob(id, [&](pb::JobRecord* r) {
      r->set_next_block(next);
      r->set_blocks_done(r->blocks_done() + done);
      r->set_pages_checked(r->pages_checked() + checked);
      r->set_bytes_done(r->pages_checked() * 4096);
      r->set_bad_pages(r->bad_pages() + bad);
      r->set_mismatched_pages(r->mismatched_pages() + mismatched);
      for (const auto& f : findings) {
        if (r->findings_size() < kMaxFindings) r->add_findings(f);
      }
    }));
    checked = bad = mismatched = done = 0;
    findings.clear();
    return absl::OkStatus();
  };

  for (const auto& [c, first_read] : chunks) {
    const uint64_t end = std::min<uint64_t>((c + 1) * kChunkBlocks, nblocks);
    for (uint64_t first = std::max(c * kChunkBlocks, job->next_block()); first < end; first += kBatch) {
      if (stop_()) return absl::AbortedError("stopping");
      if (absl::Status s = CheckCancel(id); !s.ok()) {
        if (!cancel_seen_) return s;
        ASSIGN_OR_RETURN(*job, catalog_->FinishJob(id, pb::JobRecord::CANCELLED, ""));
        LOG_INFO("job %s: scrub cancelled at block %d", id, first);
        return absl::OkStatus();
      }
      // The pointers and layout as of now: replicas change while we scrub.
      ASSIGN_OR_RETURN(spec, catalog_->GetSpec(disk));
      ASSIGN_OR_RETURN(auto chunk, catalog_->ReadChunk(disk, c));
      ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
      if (!chunk) return absl::NotFoundError(absl::StrFormat("disk %d chunk %d is gone", disk, c));
      pb::IoHeader hdr = Hdr(disk, spec.spec.layout_version());
      const uint64_t last = std::min(first + kBatch, end);
      for (uint64_t b = first; b < last; ++b, ++done) {
        const pb::BlockPtr& ptr = chunk->chunk.blocks(static_cast<int>(b - c * kChunkBlocks));
        // Every object of the block (the current one and those snapshots
        // keep): a replica is rotten if any of its objects is.
        std::set<std::string> rotten_set, answered;
        for (uint64_t gen : OwnObjects(ptr)) {
          std::map<std::string, pb::ChecksumsResponse> sums;  // CLEAN replicas that answered
          for (const auto& r : ptr.replicas()) {
            if (r.state() != pb::CLEAN || !live.count(r.node())) continue;
            auto s = nodes_->Checksums(r.node(), hdr, b, gen);
            if (!s.ok()) {  // the layout may have moved on (a stale mark): once more with it
              auto now = catalog_->GetSpec(disk);
              if (now.ok() && now->spec.layout_version() != hdr.layout_version()) {
                hdr.set_layout_version(now->spec.layout_version());
                s = nodes_->Checksums(r.node(), hdr, b, gen);
              }
            }
            if (!s.ok()) {
              findings.push_back(absl::StrFormat("block %d on %s: not checked: %s", b, r.node(),
                                                 s.status().message()));
              continue;
            }
            uint64_t present = std::count(s->present().begin(), s->present().end(), 1);
            checked += present;
            pace_->Acquire(present * 4096);
            sums[r.node()] = *std::move(s);
          }
          std::vector<std::string> sound;
          for (const auto& [node, s] : sums) {
            answered.insert(node);
            if (s.bad_pages().empty()) {
              sound.push_back(node);
              continue;
            }
            rotten_set.insert(node);
            bad += s.bad_pages_size();
            findings.push_back(absl::StrFormat("block %d on %s: %d page(s) fail their checksum (first: page %d)",
                                               b, node, s.bad_pages_size(), s.bad_pages(0)));
          }
          // Replicas whose pages all check out but differ from each other: a
          // write may have been landing; look once more before reporting.
          for (size_t i = 1; i < sound.size(); ++i) {
            if (Differing(sums[sound[0]], sums[sound[i]]).empty()) continue;
            absl::SleepFor(absl::Milliseconds(50));
            auto a = nodes_->Checksums(sound[0], hdr, b, gen);
            auto z = nodes_->Checksums(sound[i], hdr, b, gen);
            if (!a.ok() || !z.ok()) continue;
            auto diff = Differing(*a, *z);
            if (diff.empty()) continue;
            mismatched += diff.size();
            findings.push_back(absl::StrFormat("block %d: %d page(s) differ between %s and %s (first: page %d)",
                                               b, diff.size(), sound[0], sound[i], diff[0]));
          }
        }
        std::vector<std::string> rotten(rotten_set.begin(), rotten_set.end()), sound;
        for (const auto& n : answered) {
          if (!rotten_set.count(n)) sound.push_back(n);
        }
        if (!rotten.empty() && sound.empty()) {
          findings.push_back(absl::StrFormat("block %d: no clean replica without bad pages to repair from", b));
        }
        if (rotten.empty() || sound.empty()) continue;
        // A rotten replica goes STALE, if a sound one is still CLEAN then; a
        // repair copies it back from the sound one.
        ASSIGN_OR_RETURN(auto after, catalog_->UpdateChunk(disk, c, [&](pb::BlockChunk* ch) -> absl::StatusOr<bool> {
          pb::BlockPtr* p = ch->mutable_blocks(static_cast<int>(b - c * kChunkBlocks));
          bool sound_clean = false;
          for (const auto& r : p->replicas()) {
            sound_clean = sound_clean || (r.state() == pb::CLEAN &&
                                          std::find(sound.begin(), sound.end(), r.node()) != sound.end());
          }
          if (!sound_clean) return false;
          bool changed = false;
          for (auto& r : *p->mutable_replicas()) {
            if (r.state() == pb::CLEAN && std::find(rotten.begin(), rotten.end(), r.node()) != rotten.end()) {
              r.set_state(pb::STALE);
              changed = true;
            }
          }
          return changed;
        }));
        hdr.set_layout_version(after.layout_version());  // nodes learn the new one
        marked_any = true;
        LOG_WARN("job %s: disk %d block %d: %s failed checksums; marked stale, to be copied from %s",
                 id, disk, b, absl::StrJoin(rotten, ","), absl::StrJoin(sound, ","));
      }
      RETURN_IF_ERROR(save(last));
    }
  }
  ASSIGN_OR_RETURN(auto fin, catalog_->FinishJob(id, pb::JobRecord::DONE, ""));
  LOG_INFO("job %s: scrub done: %d pages checked, %d failing their checksum, %d differing", id,
           fin.pages_checked(), fin.bad_pages(), fin.mismatched_pages());
  if (marked_any) {  // the disk's job marker is free now
    auto r = catalog_->StartRepair(job->disk_name(), 0);
    if (r.ok()) {
      LOG_INFO("job %s: repair of disk %s started after scrub %s", r->id(), job->disk_name(), id);
    } else {
      LOG_WARN("job %s: no repair started (%s); the repair scans will", id, r.status().ToString());
    }
  }
  return absl::OkStatus();
}

}  // namespace ukai::node
