#include "common/channel.h"

#include <grpcpp/resource_quota.h>

#include <algorithm>

namespace ukai {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           std::shared_ptr<grpc::ChannelCredentials> creds,
                                           const std::string& server_name) {
  grpc::ChannelArguments args;
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Reconnect promptly after a node restarts instead of backing off for up to 2 min.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  // Each channel gets its own connection (no sharing across stubs' subchannels).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, std::move(creds), args);
}

ChannelFactory InsecureChannels() {
  return [](const std::string& address) {
    return MakeChannel(address, grpc::InsecureChannelCredentials());
  };
}

void ConfigureServer(grpc::ServerBuilder& builder, const RpcLimits& limits) {
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  grpc::ResourceQuota quota("ukai-rpc");
  quota.SetMaxThreads(limits.max_threads);
  quota.Resize(static_cast<size_t>(limits.max_memory));
  builder.SetResourceQuota(quota);  // holds its own reference
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_streams_per_connection);
  // gRPC sets SO_REUSEPORT by default: a second node started on a taken port
  // would bind it too and silently take half its traffic. Fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // The sync server lets a worker thread exit when more than MAX_POLLERS
  // (default 2) are polling and spawns new ones under load: with a queue
  // depth of 16 that was constant thread creation (clone3, fresh stacks) in
  // the profile. Keep enough threads polling instead.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 4);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              std::min(64, limits.max_threads / 2));
}

}  // namespace ukai
