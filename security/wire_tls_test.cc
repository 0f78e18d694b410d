// Mutual TLS on the block I/O transport: real sockets, real handshakes.
#include "security/wire_tls.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "common/wire_client.h"
#include "common/wire_server.h"
#include "security/pki.h"
#include "security/transport.h"

namespace ukai::security {
namespace {

constexpr uint16_t kEcho = 1;
const absl::Duration kYear = absl::Hours(24 * 365);

// Echoes meta + data and records who asked.
class WhoHandler : public wire::WireHandler {
 public:
  absl::Status Handle(const wire::WirePeer& peer, uint16_t, absl::string_view meta,
                      absl::string_view data, std::string* reply, bool) override {
    {
      absl::MutexLock l(&mu);
      last_peer = peer.ToString();
    }
    reply->append(meta.data(), meta.size());
    reply->append(data.data(), data.size());
    return absl::OkStatus();
  }
  bool Slow(uint16_t) const override { return false; }
  absl::Mutex mu;
  std::string last_peer ABSL_GUARDED_BY(mu);
};

class WireTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ukai-wiretls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ASSERT_TRUE(InitCa(dir_ + "/ca", "test", absl::Now()).ok());
    Issue(Role::kNode, "n1");
    auto sec = Security("n1");
    server_ = std::make_unique<wire::WireServer>(&handler_, 4, sec->wire());
    ASSERT_TRUE(server_->Start("127.0.0.1:0").ok());
    address_ = "127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }
  CertInfo Issue(Role role, const std::string& id, const std::string& ca = "ca") {
    auto info = IssueCert(dir_ + "/" + ca, Identity{role, id}, kYear, dir_ + "/" + id, absl::Now());
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : CertInfo{};
  }
  std::shared_ptr<const TransportSecurity> Security(const std::string& id) {
    auto sec = TransportSecurity::Mutual(dir_ + "/" + id, &clock_);
    EXPECT_TRUE(sec.ok()) << sec.status();
    return sec.ok() ? *sec : nullptr;
  }
  std::unique_ptr<wire::WireClient> ClientAs(const std::string& id) {
    wire::WireClientOptions o;
    if (!id.empty()) o.security = Security(id)->wire();
    return std::make_unique<wire::WireClient>(address_, o);
  }
  // One echo call: its status, and the reply when OK.
  absl::StatusOr<std::string> Echo(wire::WireClient& c, const std::string& meta,
                                   const std::string& data = "") {
    std::string out(meta.size() + data.size(), '\0');
    wire::WireCall call;
    call.method = kEcho;
    call.meta = meta;
    call.data = data.data();
    call.data_len = data.size();
    call.out = out.data();
    call.out_cap = out.size();
    wire::WireWaiter w;
    c.Start(&call, &w);
    w.WaitAll(absl::Now() + absl::Seconds(10));
    if (!call.status.ok()) return call.status;
    out.resize(call.out_len);
    return out;
  }
  std::string LastPeer() {
    absl::MutexLock l(&handler_.mu);
    return handler_.last_peer;
  }

  std::string dir_, address_;
  FakeClock clock_{absl::Now()};
  WhoHandler handler_;
  std::unique_ptr<wire::WireServer> server_;
};

TEST_F(WireTlsTest, AFrontendTalksToANodeAndTheNodeKnowsWho) {
  Issue(Role::kFrontend, "hv7");
  auto c = ClientAs("hv7");
  EXPECT_EQ(*Echo(*c, "m", "d"), "md");
  EXPECT_EQ(LastPeer(), "frontend hv7");
  // Frames larger than a record, from several threads at once, arrive whole.
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::string data((i * 37777 + t * 1000) % (1 << 20) + 1, static_cast<char>('a' + t));
        std::string meta = std::to_string(t) + ":" + std::to_string(i);
        auto r = Echo(*c, meta, data);
        if (r.ok() && *r == meta + data) ++good;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good, 80);
}

TEST_F(WireTlsTest, PlaintextAndAnotherCasCertificatesAreRefused) {
  auto plain = ClientAs("");
  EXPECT_FALSE(Echo(*plain, "m").ok());
  ASSERT_TRUE(InitCa(dir_ + "/evil-ca", "evil", absl::Now()).ok());
  Issue(Role::kFrontend, "evil", "evil-ca");
  auto evil = ClientAs("evil");
  auto r = Echo(*evil, "m");
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_EQ(LastPeer(), "");  // nothing reached the handler
}

TEST_F(WireTlsTest, AClientRefusesAServerThatIsNotANode) {
  Issue(Role::kFrontend, "hv7");
  Issue(Role::kFrontend, "fake");
  WhoHandler h;
  wire::WireServer fake(&h, 2, Security("fake")->wire());
  ASSERT_TRUE(fake.Start("127.0.0.1:0").ok());
  wire::WireClientOptions o;
  o.security = Security("hv7")->wire();
  wire::WireClient c("127.0.0.1:" + std::to_string(fake.port()), o);
  auto r = Echo(c, "secret");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("certificate"), std::string::npos) << r.status();
  fake.Shutdown();
}

TEST_F(WireTlsTest, ARevokedPeerIsRefusedAndItsOpenConnectionClosed) {
  CertInfo hv = Issue(Role::kFrontend, "hv7");
  auto c = ClientAs("hv7");
  ASSERT_TRUE(Echo(*c, "m").ok());
  ASSERT_TRUE(Revoke(dir_ + "/ca", {hv.serial}, absl::Now()).ok());
  std::filesystem::copy_file(dir_ + "/ca/crl.pem", dir_ + "/n1/crl.pem",
                             std::filesystem::copy_options::overwrite_existing);
  clock_.Advance(absl::Seconds(2));          // the server looks at its list again
  absl::SleepFor(absl::Milliseconds(1100));  // and the connection at its peer
  EXPECT_FALSE(Echo(*c, "m").ok());
  auto again = ClientAs("hv7");
  EXPECT_FALSE(Echo(*again, "m").ok());
}

}  // namespace
}  // namespace ukai::security
