#include "control/scrub_job.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"
#include "control/repair_plan.h"
#include "meta/generations.h"
#include "meta/layout.h"

namespace ukai::control {
namespace {

using meta::kChunkBlocks;
using meta::OwnObjects;
constexpr uint64_t kBatch = 32;    // blocks between progress updates
constexpr int kMaxFindings = 100;  // lines kept in the job record

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

absl::Status ScrubJob::Run() {
  const std::string id = job_->id();
  const uint64_t disk = job_->disk_id();
  meta::Catalog* catalog = ctx_->catalog();
  ASSIGN_OR_RETURN(
      *job_, catalog->UpdateJob(id, [&](pb::JobRecord* r) { r->set_runner(ctx_->env().self); }));
  LOG_INFO("job %s: scrubbing disk %s (%d) from block %d", id, job_->disk_name(), disk,
           job_->next_block());
  ASSIGN_OR_RETURN(auto spec, catalog->GetSpec(disk));
  const uint64_t nblocks = BlockCount(spec.spec);
  ASSIGN_OR_RETURN(auto chunks, catalog->ReadChunks(disk));
  if (job_->blocks_total() == 0 || job_->blocks_done() == 0) {
    RETURN_IF_ERROR(CountBlocks(chunks, nblocks));
  }
  for (const auto& [c, first_read] : chunks) {
    const uint64_t end = std::min<uint64_t>((c + 1) * kChunkBlocks, nblocks);
    for (uint64_t first = std::max(c * kChunkBlocks, job_->next_block()); first < end;
         first += kBatch) {
      RETURN_IF_ERROR(ctx_->CheckStop());
      if (absl::Status s = ctx_->CheckCancel(id); !s.ok()) {
        if (!ctx_->cancel_seen()) return s;
        ASSIGN_OR_RETURN(*job_, catalog->FinishJob(id, pb::JobRecord::CANCELLED, ""));
        LOG_INFO("job %s: scrub cancelled at block %d", id, first);
        return absl::OkStatus();
      }
      const uint64_t last = std::min(first + kBatch, end);
      RETURN_IF_ERROR(ScrubBatch(c, first, last));
      RETURN_IF_ERROR(Save(last));
    }
  }
  return Finish();
}

absl::Status ScrubJob::CountBlocks(const std::map<uint64_t, pb::BlockChunk>& chunks,
                                   uint64_t nblocks) {
  uint64_t blocks = 0;
  for (const auto& [c, chunk] : chunks) {
    blocks += std::min<uint64_t>(kChunkBlocks,
                                 nblocks > c * kChunkBlocks ? nblocks - c * kChunkBlocks : 0);
  }
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(
                              job_->id(), [&](pb::JobRecord* r) { r->set_blocks_total(blocks); }));
  return absl::OkStatus();
}

absl::Status ScrubJob::ScrubBatch(uint64_t c, uint64_t first, uint64_t last) {
  // The pointers and layout as of now: replicas change while we scrub.
  const uint64_t disk = job_->disk_id();
  ASSIGN_OR_RETURN(auto spec, ctx_->catalog()->GetSpec(disk));
  ASSIGN_OR_RETURN(auto chunk, ctx_->catalog()->ReadChunk(disk, c));
  ASSIGN_OR_RETURN(auto live, ctx_->catalog()->LiveNodes());
  if (!chunk) return absl::NotFoundError(absl::StrFormat("disk %d chunk %d is gone", disk, c));
  hdr_ = JobHeader(disk, spec.spec.layout_version());
  for (uint64_t b = first; b < last; ++b, ++done_) {
    const pb::BlockPtr& ptr = chunk->chunk.blocks(static_cast<int>(b - c * kChunkBlocks));
    RETURN_IF_ERROR(ScrubBlock(c, b, ptr, live));
  }
  return absl::OkStatus();
}

absl::Status ScrubJob::ScrubBlock(uint64_t c, uint64_t b, const pb::BlockPtr& ptr,
                                  const std::set<std::string>& live) {
  // Every object of the block (the current one and those snapshots keep):
  // a replica is rotten if any of its objects is.
  Verdict verdict;
  for (uint64_t gen : OwnObjects(ptr)) CheckObject(b, gen, ptr, live, &verdict);
  std::vector<std::string> rotten(verdict.rotten.begin(), verdict.rotten.end()), sound;
  for (const auto& n : verdict.answered) {
    if (!verdict.rotten.count(n)) sound.push_back(n);
  }
  if (!rotten.empty() && sound.empty()) {
    findings_.push_back(
        absl::StrFormat("block %d: no clean replica without bad pages to repair from", b));
  }
  if (rotten.empty() || sound.empty()) return absl::OkStatus();
  return MarkRotten(c, b, rotten, sound);
}

absl::StatusOr<pb::ChecksumsResponse> ScrubJob::Checksums(const std::string& node, uint64_t b,
                                                          uint64_t gen) {
  auto s = ctx_->peers()->Checksums(node, hdr_, b, gen);
  if (s.ok()) return s;
  // The layout may have moved on (a stale mark): once more with it.
  auto now = ctx_->catalog()->GetSpec(job_->disk_id());
  if (!now.ok() || now->spec.layout_version() == hdr_.layout_version()) return s;
  hdr_.set_layout_version(now->spec.layout_version());
  return ctx_->peers()->Checksums(node, hdr_, b, gen);
}

void ScrubJob::CheckObject(uint64_t b, uint64_t gen, const pb::BlockPtr& ptr,
                           const std::set<std::string>& live, Verdict* verdict) {
  std::map<std::string, pb::ChecksumsResponse> sums;  // CLEAN replicas that answered
  for (const auto& r : ptr.replicas()) {
    if (r.state() != pb::CLEAN || !live.count(r.node())) continue;
    auto s = Checksums(r.node(), b, gen);
    if (!s.ok()) {
      findings_.push_back(
          absl::StrFormat("block %d on %s: not checked: %s", b, r.node(), s.status().message()));
      continue;
    }
    uint64_t present = std::count(s->present().begin(), s->present().end(), 1);
    checked_ += present;
    ctx_->Pace(present * 4096);
    sums[r.node()] = *std::move(s);
  }
  std::vector<std::string> sound;
  for (const auto& [node, s] : sums) {
    verdict->answered.insert(node);
    if (s.bad_pages().empty()) {
      sound.push_back(node);
      continue;
    }
    verdict->rotten.insert(node);
    bad_ += s.bad_pages_size();
    findings_.push_back(
        absl::StrFormat("block %d on %s: %d page(s) fail their checksum (first: page %d)", b, node,
                        s.bad_pages_size(), s.bad_pages(0)));
  }
  CompareSound(b, gen, sound, sums);
}

// Replicas whose pages all check out but differ from each other: a write
// may have been landing; look once more before reporting.
void ScrubJob::CompareSound(uint64_t b, uint64_t gen, const std::vector<std::string>& sound,
                            std::map<std::string, pb::ChecksumsResponse>& sums) {
  for (size_t i = 1; i < sound.size(); ++i) {
    if (Differing(sums[sound[0]], sums[sound[i]]).empty()) continue;
    ctx_->env().clock->SleepFor(absl::Milliseconds(50));
    auto a = ctx_->peers()->Checksums(sound[0], hdr_, b, gen);
    auto z = ctx_->peers()->Checksums(sound[i], hdr_, b, gen);
    if (!a.ok() || !z.ok()) continue;
    auto diff = Differing(*a, *z);
    if (diff.empty()) continue;
    mismatched_ += diff.size();
    findings_.push_back(
        absl::StrFormat("block %d: %d page(s) differ between %s and %s (first: page %d)", b,
                        diff.size(), sound[0], sound[i], diff[0]));
  }
}

// A rotten replica goes STALE, if a sound one is still CLEAN then; a repair
// copies it back from the sound one.
absl::Status ScrubJob::MarkRotten(uint64_t c, uint64_t b, const std::vector<std::string>& rotten,
                                  const std::vector<std::string>& sound) {
  auto mark = [&](pb::BlockChunk* ch) -> absl::StatusOr<bool> {
    pb::BlockPtr* p = ch->mutable_blocks(static_cast<int>(b - c * kChunkBlocks));
    bool sound_clean = false;
    for (const auto& r : p->replicas()) {
      sound_clean = sound_clean || (r.state() == pb::CLEAN && Contains(sound, r.node()));
    }
    if (!sound_clean) return false;
    bool changed = false;
    for (auto& r : *p->mutable_replicas()) {
      if (r.state() == pb::CLEAN && Contains(rotten, r.node())) {
        r.set_state(pb::STALE);
        changed = true;
      }
    }
    return changed;
  };
  ASSIGN_OR_RETURN(auto after, ctx_->catalog()->UpdateChunk(job_->disk_id(), c, mark));
  hdr_.set_layout_version(after.layout_version());  // nodes learn the new one
  marked_any_ = true;
  LOG_WARN("job %s: disk %d block %d: %s failed checksums; marked stale, to be copied from %s",
           job_->id(), job_->disk_id(), b, absl::StrJoin(rotten, ","), absl::StrJoin(sound, ","));
  return absl::OkStatus();
}

absl::Status ScrubJob::Save(uint64_t next) {
  ASSIGN_OR_RETURN(*job_, ctx_->catalog()->UpdateJob(job_->id(), [&](pb::JobRecord* r) {
    r->set_next_block(next);
    r->set_blocks_done(r->blocks_done() + done_);
    r->set_pages_checked(r->pages_checked() + checked_);
    r->set_bytes_done(r->pages_checked() * 4096);
    r->set_bad_pages(r->bad_pages() + bad_);
    r->set_mismatched_pages(r->mismatched_pages() + mismatched_);
    for (const auto& f : findings_) {
      if (r->findings_size() < kMaxFindings) r->add_findings(f);
    }
  }));
  checked_ = bad_ = mismatched_ = done_ = 0;
  findings_.clear();
  return absl::OkStatus();
}

absl::Status ScrubJob::Finish() {
  const std::string& id = job_->id();
  ASSIGN_OR_RETURN(auto fin, ctx_->catalog()->FinishJob(id, pb::JobRecord::DONE, ""));
  LOG_INFO("job %s: scrub done: %d pages checked, %d failing their checksum, %d differing", id,
           fin.pages_checked(), fin.bad_pages(), fin.mismatched_pages());
  if (!marked_any_) return absl::OkStatus();
  // The disk's job marker is free now.
  auto r = ctx_->catalog()->StartRepair(job_->disk_name(), 0);
  if (r.ok()) {
    LOG_INFO("job %s: repair of disk %s started after scrub %s", r->id(), job_->disk_name(), id);
  } else {
    LOG_WARN("job %s: no repair started (%s); the repair scans will", id, r.status().ToString());
  }
  return absl::OkStatus();
}

}  // namespace ukai::control
