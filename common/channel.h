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
// What a gRPC server lets its callers take (docs/SECURITY.md, "Limits").
struct RpcLimits {
  // Threads serving calls at once: beyond them a call is answered
  // RESOURCE_EXHAUSTED at once, not queued.
  int max_threads = 256;
  // Memory for calls' buffers (messages being received and sent).
  int64_t max_memory = 1ll << 30;
  // Concurrent streams per client connection.
  int max_streams_per_connection = 64;
};
// Applies the message limits, and `limits`, to a server.
void ConfigureServer(grpc::ServerBuilder& builder, const RpcLimits& limits = RpcLimits());
}  // namespace ukai

#endif  // UKAI_COMMON_CHANNEL_H_
