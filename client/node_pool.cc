#include "client/node_pool.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/log.h"
#include "common/status.h"

namespace ukai::client {

NodePool::NodePool(meta::Catalog* catalog, std::string my_site, std::string host,
                   ChannelFactory channels, wire::WireClientOptions io)
    : catalog_(catalog),
      my_site_(std::move(my_site)),
      host_(std::move(host)),
      channels_(std::move(channels)),
      io_options_(io) {}

NodePool::~NodePool() {
  guard_.Kill();
  stop_.Notify();
  if (pinger_.joinable()) pinger_.join();
}

absl::Status NodePool::Start() {
  RETURN_IF_ERROR(WatchLive());
  RETURN_IF_ERROR(WatchNodes());
  pinger_ = std::thread([this] { PingLoop(); });
  return absl::OkStatus();
}

// Each watch re-arms only itself: one pending watch per folder, always.
absl::Status NodePool::WatchLive() {
  auto live = catalog_->LiveNodes(guard_.Wrap([this] {
    absl::Status s = WatchLive();
    if (!s.ok()) LOG_WARN("reloading node liveness: %s", s.ToString());
  }));
  if (!live.ok()) return live.status();
  return Reload();
}

absl::Status NodePool::WatchNodes() {
  auto ids = catalog_->store().Children(catalog_->paths().nodes(), guard_.Wrap([this] {
    absl::Status s = WatchNodes();
    if (!s.ok()) LOG_WARN("reloading the node list: %s", s.ToString());
  }));
  if (!ids.ok()) return ids.status();
  return Reload();
}

absl::Status NodePool::Reload() {
  ASSIGN_OR_RETURN(auto live, catalog_->LiveNodes());
  ASSIGN_OR_RETURN(auto infos, catalog_->ListNodes());
  absl::MutexLock l(&mu_);
  for (auto& info : infos) {
    Node& n = nodes_[info.id()];
    if (!n.stub || n.info.address() != info.address()) {
      n.channel = channels_(info.address());
      n.stub = pb::NodeOps::NewStub(n.channel);
    }
    if (!info.io_address().empty() && (!n.io || n.io->address() != info.io_address())) {
      n.io = std::make_shared<wire::WireClient>(info.io_address(), io_options_);
    }
    n.info = std::move(info);
    n.live = live.count(n.info.id()) > 0;
  }
  return absl::OkStatus();
}

void NodePool::Publish() {
  if (host_.empty()) return;
  pb::FrontendRecord r;
  r.set_host(host_);
  r.set_site(my_site_);
  r.set_updated_ms(static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())));
  {
    absl::MutexLock l(&mu_);
    for (const auto& [id, n] : nodes_) {
      if (n.live && n.rtt_us < 1e6) (*r.mutable_rtt_us())[id] = static_cast<uint32_t>(n.rtt_us);
    }
  }
  absl::Status s = catalog_->PublishFrontend(r);
  if (!s.ok()) LOG_DEBUG("publishing RTTs: %s", s.ToString());
}

void NodePool::PingLoop() {
  for (int round = 0; !stop_.WaitForNotificationWithTimeout(absl::Seconds(1)); ++round) {
    if (round % 5 == 1) Publish();  // what the last rounds measured, every 5 s
    std::vector<
        std::tuple<std::string, std::shared_ptr<grpc::Channel>, std::shared_ptr<pb::NodeOps::Stub>>>
        targets;
    {
      absl::MutexLock l(&mu_);
      for (auto& [id, n] : nodes_) {
        if (n.live) targets.emplace_back(id, n.channel, n.stub);
      }
    }
    for (auto& [id, channel, stub] : targets) PingOne(id, channel.get(), stub.get());
  }
}

void NodePool::PingOne(const std::string& id, grpc::Channel* channel, pb::NodeOps::Stub* stub) {
  bool connected = channel->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1000));
  pb::PingResponse resp;
  pb::PingRequest ping;
  ping.set_site(my_site_);
  absl::Time start = absl::Now();
  grpc::Status s = stub->Ping(&ctx, ping, &resp);
  double us = absl::ToDoubleMicroseconds(absl::Now() - start);
  absl::MutexLock l(&mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  double& rtt = it->second.rtt_us;
  if (!s.ok()) {
    rtt = 1e6;
  } else if (connected) {
    rtt = rtt >= 1e6 ? us : 0.8 * rtt + 0.2 * us;  // EWMA
  }
}

absl::StatusOr<std::shared_ptr<wire::WireClient>> NodePool::Io(const std::string& id) {
  absl::MutexLock l(&mu_);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return absl::NotFoundError("unknown node '" + id + "'");
  if (!it->second.io) {
    return absl::UnavailableError("node '" + id + "' publishes no block I/O address");
  }
  return it->second.io;
}

std::vector<std::string> NodePool::ReadOrder(std::vector<std::string> ids) {
  std::map<std::string, std::tuple<int, double>> key;  // (tier, rtt) of each id
  {
    absl::MutexLock l(&mu_);
    for (const auto& id : ids) {
      auto it = nodes_.find(id);
      if (it == nodes_.end()) {
        key[id] = std::make_tuple(2, 1e9);
        continue;
      }
      const Node& n = it->second;
      int tier = !n.live ? 2 : (n.info.site() == my_site_ ? 0 : 1);
      key[id] = std::make_tuple(tier, n.rtt_us);
    }
  }
  std::stable_sort(ids.begin(), ids.end(),
                   [&](const std::string& a, const std::string& b) { return key[a] < key[b]; });
  return ids;
}

std::vector<pb::NodeInfo> NodePool::LiveNodes() {
  absl::MutexLock l(&mu_);
  std::vector<pb::NodeInfo> out;
  for (auto& [id, n] : nodes_) {
    if (n.live) out.push_back(n.info);
  }
  return out;
}

}  // namespace ukai::client
