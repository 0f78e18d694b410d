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
// A channel to `address` with `creds`; `server_name`, when given, is the name
// the server's certificate must carry (instead of the address's host).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           std::shared_ptr<grpc::ChannelCredentials> creds,
                                           const std::string& server_name = "");
// Where a process gets its channel to an address: TransportSecurity::Channels
// (security/transport.h) in daemons, in-process channels in tests.
using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string& address)>;
// Plaintext channels: for tests and benchmarks that run without TLS.
ChannelFactory InsecureChannels();
// Applies the same limits to a server.
void ConfigureServer(grpc::ServerBuilder& builder);
}  // namespace ukai

#endif  // UKAI_COMMON_CHANNEL_H_
