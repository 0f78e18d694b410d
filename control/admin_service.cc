#include "control/admin_service.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status.h"
#include "meta/layout.h"

namespace ukai::control {
namespace {
constexpr auto kStatDeadline = std::chrono::milliseconds(1500);
}  // namespace

pb::NodeOps::Stub* AdminService::Stub(const std::string& address) {
  absl::MutexLock l(&mu_);
  auto& s = stubs_[address];
  if (!s) s = pb::NodeOps::NewStub(channels_(address));
  return s.get();
}

absl::StatusOr<std::vector<AdminService::NodeStat>> AdminService::StatNodes() {
  ASSIGN_OR_RETURN(auto nodes, catalog_->ListNodes());
  ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
  std::vector<NodeStat> out(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    out[i].info = nodes[i];
    out[i].live = live.count(nodes[i].id()) > 0;
  }
  ParallelFor(executor_, out.size(), out.size(), [&](size_t i) {
    if (!out[i].live || !channels_) return;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kStatDeadline);
    pb::StatResponse resp;
    grpc::Status s = Stub(out[i].info.address())->Stat(&ctx, pb::StatRequest(), &resp);
    out[i].stat = s.ok() ? absl::StatusOr<pb::StatResponse>(resp) : FromGrpc(s);
  });
  return out;
}

absl::StatusOr<AdminService::SiteRtt> AdminService::RttBySite() {
  ASSIGN_OR_RETURN(auto fronts, catalog_->ListFrontends());
  std::map<std::pair<std::string, std::string>, std::vector<uint32_t>> samples;
  for (const auto& f : fronts) {
    for (const auto& [node, us] : f.rtt_us()) samples[{f.site(), node}].push_back(us);
  }
  SiteRtt out;
  for (auto& [key, v] : samples) {
    std::sort(v.begin(), v.end());
    out[key.first][key.second] = v[v.size() / 2];
  }
  return out;
}

grpc::Status AdminService::ListNodes(grpc::ServerContext*, const pb::ListNodesRequest*,
                                     pb::ListNodesResponse* resp) {
  auto nodes = StatNodes();
  if (!nodes.ok()) return ToGrpc(nodes.status());
  auto rtt = RttBySite();
  if (!rtt.ok()) return ToGrpc(rtt.status());
  auto states = catalog_->NodeStates();
  if (!states.ok()) return ToGrpc(states.status());
  auto held = ReplicaBlocks();
  if (!held.ok()) return ToGrpc(held.status());
  for (auto& n : *nodes) {
    auto* st = resp->add_nodes();
    *st->mutable_info() = n.info;
    *st->mutable_state() = (*states)[n.info.id()];
    st->set_replica_blocks((*held)[n.info.id()]);
    st->set_up(n.live && n.stat.ok());
    for (const auto& [site, by_node] : *rtt) {
      auto it = by_node.find(n.info.id());
      if (it != by_node.end()) (*st->mutable_rtt_us_by_site())[site] = it->second;
    }
    if (n.stat.ok()) {
      st->set_used_bytes(n.stat->used_bytes());
    } else {
      st->set_error(n.live ? std::string(n.stat.status().message()) : "not registered as live");
    }
  }
  return grpc::Status::OK;
}

absl::Status AdminService::FillDiskInfo(const pb::DiskSpec& spec, pb::DiskInfo* info) {
  *info->mutable_spec() = spec;
  ASSIGN_OR_RETURN(auto nodes, StatNodes());
  uint64_t total = 0;
  for (const auto& n : nodes) {
    if (!n.stat.ok()) {
      info->add_unreachable_nodes(n.info.id());
      continue;
    }
    auto it = n.stat->disk_bytes().find(spec.id());
    if (it != n.stat->disk_bytes().end()) {
      (*info->mutable_node_bytes())[n.info.id()] = it->second;
      total += it->second;
    }
  }
  info->set_allocated_bytes(total);
  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(spec.id()));
  info->set_allocated_chunks(chunks.size());
  ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
  uint64_t stale = 0, syncing = 0, degraded = 0;
  for (const auto& [c, chunk] : chunks) {
    for (const auto& b : chunk.blocks()) {
      bool any_stale = false, any_syncing = false;
      uint32_t good = 0;
      for (const auto& r : b.replicas()) {
        any_stale = any_stale || r.state() == pb::STALE;
        any_syncing = any_syncing || r.state() == pb::SYNCING;
        good += r.state() == pb::CLEAN && live.count(r.node());
      }
      stale += any_stale;
      syncing += any_syncing;
      degraded += good < spec.placement().replicas();
    }
  }
  info->set_stale_blocks(stale);
  info->set_syncing_blocks(syncing);
  info->set_degraded_blocks(degraded);
  auto job = catalog_->store().Get(catalog_->paths().disk_job(spec.id()));
  if (job.ok()) info->set_job(job->data);
  ASSIGN_OR_RETURN(auto open, catalog_->OpenBy(spec.id()));
  for (auto& o : open) *info->add_open_by() = std::move(o);
  auto w = catalog_->Writer(spec.id());
  if (w.ok()) *info->mutable_writer() = *w;
  return absl::OkStatus();
}

// What a frontend in `site` would do (client/node_pool.cc ReadOrder): per
// allocated block, the first live CLEAN replica by (same site, RTT from site).
absl::Status AdminService::FillReadsFrom(const pb::DiskSpec& spec, const std::string& site,
                                         pb::DiskInfo* info) {
  info->set_from_site(site);
  ASSIGN_OR_RETURN(auto nodes, catalog_->ListNodes());
  ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
  ASSIGN_OR_RETURN(auto rtt, RttBySite());
  std::map<std::string, std::string> site_of;
  for (const auto& n : nodes) site_of[n.id()] = n.site();
  bool known = false;
  for (const auto& [id, s] : site_of) known = known || s == site;
  if (!known && !rtt.count(site)) {
    return absl::InvalidArgumentError("unknown site '" + site + "'");
  }
  const auto& from = rtt[site];
  auto key = [&](const std::string& id) {
    auto it = from.find(id);
    return std::make_tuple(site_of[id] == site ? 0 : 1, it == from.end() ? UINT32_MAX : it->second);
  };
  ASSIGN_OR_RETURN(auto chunks, catalog_->ReadChunks(spec.id()));
  std::map<std::string, uint64_t> blocks;
  const uint64_t nblocks = (spec.size() + spec.block_size() - 1) / spec.block_size();
  for (const auto& [c, chunk] : chunks) {
    for (int i = 0; i < chunk.blocks_size(); ++i) {
      if (c * meta::kChunkBlocks + static_cast<uint64_t>(i) >= nblocks) break;
      std::string best;
      for (const auto& r : chunk.blocks(i).replicas()) {
        if (r.state() != pb::CLEAN || !live.count(r.node())) continue;
        if (best.empty() || key(r.node()) < key(best)) best = r.node();
      }
      ++blocks[best.empty() ? "" : best];
    }
  }
  for (const auto& [node, n] : blocks) {
    pb::ReadSource* r = info->add_reads_from();
    r->set_node(node);  // "": no clean replica is up
    r->set_site(site_of[node]);
    auto it = from.find(node);
    r->set_rtt_us(it == from.end() ? 0 : it->second);
    r->set_blocks(n);
  }
  return absl::OkStatus();
}

grpc::Status AdminService::CreateDisk(grpc::ServerContext*, const pb::CreateDiskRequest* req,
                                      pb::DiskInfo* resp) {
  auto spec = catalog_->CreateDisk(*req);
  if (!spec.ok()) return ToGrpc(spec.status());
  LOG_INFO("disk %s (id %d) created: %d bytes", spec->name(), spec->id(), spec->size());
  *resp->mutable_spec() = *spec;
  return grpc::Status::OK;
}

grpc::Status AdminService::ListDisks(grpc::ServerContext*, const pb::ListDisksRequest*,
                                     pb::ListDisksResponse* resp) {
  auto disks = catalog_->ListDisks();
  if (!disks.ok()) return ToGrpc(disks.status());
  for (auto& d : *disks) *resp->add_disks() = std::move(d);
  return grpc::Status::OK;
}

grpc::Status AdminService::GetDisk(grpc::ServerContext*, const pb::DiskRequest* req,
                                   pb::DiskInfo* resp) {
  auto spec = catalog_->GetByName(req->name());
  if (!spec.ok()) return ToGrpc(spec.status());
  absl::Status s = FillDiskInfo(*spec, resp);
  if (s.ok() && !req->from_site().empty()) s = FillReadsFrom(*spec, req->from_site(), resp);
  return ToGrpc(s);
}

grpc::Status AdminService::ResizeDisk(grpc::ServerContext*, const pb::ResizeDiskRequest* req,
                                      pb::DiskInfo* resp) {
  auto spec = catalog_->Resize(req->name(), req->size());
  if (!spec.ok()) return ToGrpc(spec.status());
  LOG_INFO("disk %s resized to %d bytes", spec->name(), spec->size());
  *resp->mutable_spec() = *spec;
  return grpc::Status::OK;
}

grpc::Status AdminService::SetPolicy(grpc::ServerContext*, const pb::SetPolicyRequest* req,
                                     pb::DiskInfo* resp) {
  auto spec = catalog_->SetFailurePolicy(req->name(), req->failure());
  if (!spec.ok()) return ToGrpc(spec.status());
  LOG_INFO("disk %s: failure policy now %s", spec->name(), spec->failure().ShortDebugString());
  return ToGrpc(FillDiskInfo(*spec, resp));
}

grpc::Status AdminService::DeleteDisk(grpc::ServerContext*, const pb::DiskRequest* req,
                                      pb::DiskInfo* resp) {
  auto spec = catalog_->BeginDelete(req->name(), req->force());
  if (!spec.ok()) return ToGrpc(spec.status());
  *resp->mutable_spec() = *spec;
  // Drop the data on every live node now; a node that is down drops it when
  // it starts (DiskRegistry::Start), so nothing leaks.
  auto nodes = StatNodes();
  if (nodes.ok()) {
    for (const auto& n : *nodes) {
      if (!n.stat.ok()) continue;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      pb::DropDiskRequest drop;
      drop.set_disk_id(spec->id());
      pb::DropDiskResponse ignored;
      grpc::Status s = Stub(n.info.address())->DropDisk(&ctx, drop, &ignored);
      if (!s.ok())
        LOG_WARN("disk %s: node %s did not drop it: %s", req->name(), n.info.id(),
                 s.error_message());
    }
  }
  absl::Status s = catalog_->FinishDelete(spec->id());
  if (!s.ok()) return ToGrpc(s);
  LOG_INFO("disk %s (id %d) deleted", spec->name(), spec->id());
  return grpc::Status::OK;
}

grpc::Status AdminService::Relocate(grpc::ServerContext*, const pb::RelocateRequest* req,
                                    pb::JobRecord* resp) {
  pb::Placement target;
  for (const auto& site : req->sites()) target.add_sites(site);
  for (const auto& node : req->nodes()) target.add_nodes(node);
  auto job = catalog_->StartRelocation(req->name(), target, req->bandwidth_bps());
  if (!job.ok()) return ToGrpc(job.status());
  LOG_INFO("job %s: relocate disk %s to %s%s", job->id(), req->name(),
           absl::StrJoin(req->sites().empty() ? req->nodes() : req->sites(), ","),
           req->sites().empty() ? " (nodes)" : " (sites)");
  *resp = *job;
  return grpc::Status::OK;
}

absl::StatusOr<std::map<std::string, uint64_t>> AdminService::ReplicaBlocks() {
  std::map<std::string, uint64_t> out;
  ASSIGN_OR_RETURN(auto disks, catalog_->ListDisks());
  for (const auto& d : disks) {
    auto chunks = catalog_->ReadChunks(d.id());
    if (absl::IsNotFound(chunks.status())) continue;  // deleted meanwhile
    if (!chunks.ok()) return chunks.status();
    for (const auto& [c, chunk] : *chunks) {
      for (const auto& b : chunk.blocks()) {
        for (const auto& r : b.replicas()) ++out[r.node()];
      }
    }
  }
  return out;
}

grpc::Status AdminService::Scrub(grpc::ServerContext*, const pb::RepairRequest* req,
                                 pb::JobRecord* resp) {
  auto job = catalog_->StartScrub(req->name(), req->bandwidth_bps());
  if (!job.ok()) return ToGrpc(job.status());
  LOG_INFO("job %s: scrub disk %s", job->id(), req->name());
  *resp = *job;
  return grpc::Status::OK;
}

grpc::Status AdminService::DrainNode(grpc::ServerContext*, const pb::NodeRequest* req,
                                     pb::NodeStatus* resp) {
  auto st = catalog_->UpdateNodeState(req->id(), [&](pb::NodeState* s) {
    if (s->draining() == !req->undo()) return false;
    s->set_draining(!req->undo());
    return true;
  });
  if (!st.ok()) return ToGrpc(st.status());
  LOG_INFO("node %s: %s", req->id(), req->undo() ? "no longer draining" : "draining");
  resp->mutable_info()->set_id(req->id());
  *resp->mutable_state() = *st;
  return grpc::Status::OK;
}

grpc::Status AdminService::RemoveNode(grpc::ServerContext*, const pb::NodeRequest* req,
                                      pb::NodeStatus* resp) {
  auto live = catalog_->LiveNodes();
  if (!live.ok()) return ToGrpc(live.status());
  auto held = ReplicaBlocks();
  if (!held.ok()) return ToGrpc(held.status());
  auto nodes = catalog_->ListNodes();
  if (!nodes.ok()) return ToGrpc(nodes.status());
  if (std::none_of(nodes->begin(), nodes->end(),
                   [&](const pb::NodeInfo& n) { return n.id() == req->id(); })) {
    return ToGrpc(absl::NotFoundError("no node '" + req->id() + "'"));
  }
  if ((*held)[req->id()] > 0) {
    return ToGrpc(absl::FailedPreconditionError(absl::StrFormat(
        "node %s still holds %d block replicas: `ukaictl node drain %s` and wait for 0 in "
        "`ukaictl node list`",
        req->id(), (*held)[req->id()], req->id())));
  }
  if (live->count(req->id())) {
    return ToGrpc(absl::FailedPreconditionError("node " + req->id() + " is up: stop it first"));
  }
  absl::Status s = catalog_->RemoveNode(req->id());
  if (!s.ok()) return ToGrpc(s);
  LOG_INFO("node %s removed", req->id());
  resp->mutable_info()->set_id(req->id());
  return grpc::Status::OK;
}

grpc::Status AdminService::Repair(grpc::ServerContext*, const pb::RepairRequest* req,
                                  pb::JobRecord* resp) {
  // Draining nodes' replicas move too (nodes down past their grace are the
  // repair scans' to judge).
  auto states = catalog_->NodeStates();
  if (!states.ok()) return ToGrpc(states.status());
  std::vector<std::string> draining;
  for (const auto& [id, st] : *states) {
    if (st.draining()) draining.push_back(id);
  }
  auto job = catalog_->StartRepair(req->name(), req->bandwidth_bps(), draining);
  if (!job.ok()) return ToGrpc(job.status());
  LOG_INFO("job %s: repair disk %s", job->id(), req->name());
  *resp = *job;
  return grpc::Status::OK;
}

grpc::Status AdminService::ListJobs(grpc::ServerContext*, const pb::ListJobsRequest*,
                                    pb::ListJobsResponse* resp) {
  auto jobs = catalog_->ListJobs();
  if (!jobs.ok()) return ToGrpc(jobs.status());
  for (auto& j : *jobs) *resp->add_jobs() = std::move(j);
  resp->set_keep_seconds(static_cast<uint64_t>(absl::ToInt64Seconds(retention_.keep)));
  resp->set_keep_max(static_cast<uint32_t>(retention_.keep_max));
  return grpc::Status::OK;
}

grpc::Status AdminService::GetJob(grpc::ServerContext*, const pb::JobRequest* req,
                                  pb::JobRecord* resp) {
  auto job = catalog_->GetJob(req->id());
  if (!job.ok()) return ToGrpc(job.status());
  *resp = job->job;
  return grpc::Status::OK;
}

grpc::Status AdminService::CancelJob(grpc::ServerContext*, const pb::JobRequest* req,
                                     pb::JobRecord* resp) {
  auto job = catalog_->CancelJob(req->id());
  if (!job.ok()) return ToGrpc(job.status());
  LOG_INFO("job %s: cancel requested", req->id());
  *resp = *job;
  return grpc::Status::OK;
}

}  // namespace ukai::control
