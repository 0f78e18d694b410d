// A gRPC server configured by ConfigureServer answers calls beyond its
// thread limit at once with RESOURCE_EXHAUSTED instead of queueing them.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/channel.h"
#include "ukai.grpc.pb.h"

namespace ukai {
namespace {

// Ping waits until released.
class StuckPing : public pb::NodeOps::Service {
 public:
  grpc::Status Ping(grpc::ServerContext*, const pb::PingRequest*, pb::PingResponse*) override {
    ++inside;
    release.WaitForNotification();
    return grpc::Status::OK;
  }
  std::atomic<int> inside{0};
  absl::Notification release;
};

TEST(RpcLimits, CallsBeyondTheThreadLimitAreRefusedAtOnce) {
  StuckPing service;
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  RpcLimits limits;
  limits.max_threads = 16;
  ConfigureServer(b, limits);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = pb::NodeOps::NewStub(
      MakeChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  std::atomic<int> ok{0}, exhausted{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 40; ++i) {
    callers.emplace_back([&] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      pb::PingResponse resp;
      grpc::Status s = stub->Ping(&ctx, pb::PingRequest(), &resp);
      if (s.ok()) ++ok;
      if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++exhausted;
    });
  }
  // The refused ones come back while the others are still stuck.
  for (int i = 0; i < 200 && exhausted == 0; ++i) absl::SleepFor(absl::Milliseconds(50));
  EXPECT_GT(exhausted, 0);
  EXPECT_LE(service.inside, limits.max_threads);
  service.release.Notify();
  for (auto& t : callers) t.join();
  EXPECT_EQ(ok + exhausted, 40);
  EXPECT_GT(ok, 0);
  server->Shutdown();
}

}  // namespace
}  // namespace ukai
