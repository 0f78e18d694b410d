// What one peer may take from a block I/O server (WireLimits): real sockets,
// hostile peers on another loopback address, a well-behaved client beside.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <vector>

#include "common/wire_client.h"
#include "common/wire_format.h"
#include "common/wire_server.h"
#include "common/wire_testing.h"

namespace ukai::wire {
namespace {

constexpr uint16_t kEcho = 1;

class EchoHandler : public WireHandler {
 public:
  absl::Status Handle(const WirePeer&, uint16_t, absl::string_view meta, absl::string_view data,
                      std::string* reply, bool) override {
    reply->append(meta.data(), meta.size());
    reply->append(data.data(), data.size());
    return absl::OkStatus();
  }
  bool Slow(uint16_t) const override { return false; }
};

struct Rig {
  explicit Rig(WireLimits limits) : server(&handler, 4, nullptr, limits) {
    EXPECT_TRUE(server.Start("127.0.0.1:0").ok());
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server.port()); }
  EchoHandler handler;
  WireServer server;
};

// A raw connection to the server from `source`, another loopback address:
// another peer as far as the per-peer limits go. -1 on failure.
int RawConnect(const Rig& rig, const char* source) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, source, &a.sin_addr);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0) return close(fd), -1;
  a.sin_port = htons(static_cast<uint16_t>(rig.server.port()));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0) return close(fd), -1;
  return fd;
}

// Whether the server closed `fd` within `ms` milliseconds.
bool ClosedWithin(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return false;
  char c;
  return read(fd, &c, 1) <= 0;
}

void SendHeader(int fd, uint32_t data_len, size_t bytes = kHeaderBytes) {
  Header h;
  h.method = kEcho;
  h.tag = 1;
  h.data_len = data_len;
  char buf[kHeaderBytes];
  EncodeHeader(h, buf);
  ASSERT_EQ(write(fd, buf, bytes), static_cast<ssize_t>(bytes));
}

// An echo of `data`: OK only if it came back whole.
absl::Status Echo(WireClient& c, const std::string& data) {
  Reply r = CallAndWait(c, kEcho, "", data);
  if (r.status.ok() && r.data != data) return absl::DataLossError("echo differs");
  return r.status;
}

int64_t RssBytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

TEST(WireLimits, AReservedByteNotZeroMakesAFrameMalformed) {
  Header h;
  h.method = kEcho;
  char buf[kHeaderBytes];
  EncodeHeader(h, buf);
  Header back;
  ASSERT_TRUE(DecodeHeader(buf, &back));
  buf[31] = 1;
  EXPECT_FALSE(DecodeHeader(buf, &back));
  Rig rig{WireLimits()};
  int fd = RawConnect(rig, "127.0.0.2");
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, buf, sizeof(buf)), static_cast<ssize_t>(sizeof(buf)));
  EXPECT_TRUE(ClosedWithin(fd, 5000));
  close(fd);
}

TEST(WireLimits, HeadersOfHugeFramesHoldNoMemoryAndOnlyTheirPeersShare) {
  WireLimits limits;
  Rig rig(limits);
  const int64_t rss = RssBytes();
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {  // 20 x 64 MiB announced, none of it sent
    fds.push_back(RawConnect(rig, "127.0.0.2"));
    ASSERT_GE(fds.back(), 0);
    SendHeader(fds.back(), kMaxDataBytes);
  }
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_GT(rig.server.held_bytes(), 0u);
  EXPECT_LE(rig.server.held_bytes(), limits.max_peer_bytes);
  EXPECT_LT(RssBytes() - rss, 32 << 20);
  // Another peer is not held up by them.
  WireClient client(rig.address());
  EXPECT_TRUE(Echo(client, std::string(1 << 20, 'x')).ok());
  for (int fd : fds) close(fd);
}

TEST(WireLimits, APeerGetsSoManyConnectionsAndOthersStillConnect) {
  WireLimits limits;
  limits.max_connections_per_peer = 3;
  Rig rig(limits);
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) fds.push_back(RawConnect(rig, "127.0.0.2"));
  for (int fd : fds) ASSERT_GE(fd, 0);
  absl::SleepFor(absl::Milliseconds(100));
  int fourth = RawConnect(rig, "127.0.0.2");
  EXPECT_TRUE(ClosedWithin(fourth, 5000));
  for (int fd : fds) EXPECT_FALSE(ClosedWithin(fd, 10));
  WireClient client(rig.address());
  EXPECT_TRUE(Echo(client, "hello").ok());
  close(fourth);
  for (int fd : fds) close(fd);
}

TEST(WireLimits, SilentAndStalledConnectionsAreClosedButOneThatSpokeMayIdle) {
  WireLimits limits;
  limits.frame_timeout = absl::Milliseconds(300);
  Rig rig(limits);
  int silent = RawConnect(rig, "127.0.0.2");
  int stalled = RawConnect(rig, "127.0.0.2");
  ASSERT_GE(silent, 0);
  ASSERT_GE(stalled, 0);
  SendHeader(stalled, 0, 10);  // a third of a header, then nothing
  WireClient client(rig.address());
  ASSERT_TRUE(Echo(client, "first").ok());
  EXPECT_TRUE(ClosedWithin(silent, 5000));
  EXPECT_TRUE(ClosedWithin(stalled, 5000));
  absl::SleepFor(absl::Milliseconds(600));  // twice the frame timeout, idle
  EXPECT_EQ(rig.server.connections(), 1);
  EXPECT_TRUE(Echo(client, "again").ok());
  close(silent);
  close(stalled);
}

}  // namespace
}  // namespace ukai::wire
