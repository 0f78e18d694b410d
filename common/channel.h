// gRPC channels between UKAI processes: one helper so every channel has the
// same message limits and keepalive settings.
#ifndef UKAI_COMMON_CHANNEL_H_
#define UKAI_COMMON_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

namespace ukai {
constexpr int kMaxMessageBytes = 80 << 20;  // a 64 MiB block plus headers
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);
// Where a process gets its channel to an address: MakeChannel in daemons,
// in-process channels in tests.
using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string& address)>;
// Applies the same limits to a server.
void ConfigureServer(grpc::ServerBuilder& builder);
}  // namespace ukai

#endif  // UKAI_COMMON_CHANNEL_H_
