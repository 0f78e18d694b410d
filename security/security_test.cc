#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "common/clock.h"
#include "security/authorizer.h"
#include "security/files.h"
#include "security/pki.h"
#include "security/tls_dir.h"
#include "security/transport.h"
#include "security/zk_auth.h"
#include "ukai.grpc.pb.h"

namespace ukai::security {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1800000000);
const absl::Duration kYear = absl::Hours(24 * 365);

int ModeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? int(st.st_mode & 0777) : -1;
}

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ukai-pki-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ca_ = dir_ + "/ca";
    ASSERT_TRUE(InitCa(ca_, "test", now_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  CertInfo Issue(Role role, const std::string& id, const std::string& out,
                 absl::Duration validity = kYear) {
    auto info = IssueCert(ca_, Identity{role, id}, validity, dir_ + "/" + out, now_);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : CertInfo{};
  }
  std::string Read(const std::string& path) { return *ReadSmallFile(path); }
  std::string dir_, ca_;
  absl::Time now_ = kNow;  // when certificates are issued
};

TEST(IdentityTest, UriRoundTripsAndBadOnesAreRefused) {
  Identity who{Role::kFrontend, "hv7"};
  EXPECT_EQ(IdentityUri(who), "ukai:frontend:hv7");
  EXPECT_EQ(*ParseIdentityUri("ukai:frontend:hv7"), who);
  EXPECT_EQ(who.ToString(), "frontend hv7");
  for (const char* bad : {"", "ukai:", "ukai:node", "ukai:root:x", "ukai:node:", "ukai:node:a/b",
                          "spiffe:node:n1", "ukai:node:a:b"}) {
    EXPECT_FALSE(ParseIdentityUri(bad).ok()) << bad;
  }
  EXPECT_FALSE(ValidateId(std::string(65, 'x')).ok());
  EXPECT_TRUE(ValidateId(std::string(64, 'x')).ok());
}

TEST_F(PkiTest, CaFilesArePrivateAndInitRefusesToOverwrite) {
  EXPECT_EQ(ModeOf(ca_), 0700);
  EXPECT_EQ(ModeOf(ca_ + "/ca.key"), 0600);
  EXPECT_TRUE(absl::IsAlreadyExists(InitCa(ca_, "again", kNow)));
}

TEST_F(PkiTest, IssuedCertificateNamesItsIdentityAndVerifies) {
  CertInfo info = Issue(Role::kNode, "n1", "n1");
  EXPECT_EQ(info.who, (Identity{Role::kNode, "n1"}));
  EXPECT_EQ(ModeOf(dir_ + "/n1"), 0700);
  EXPECT_EQ(ModeOf(dir_ + "/n1/key.pem"), 0600);
  std::string cert = Read(dir_ + "/n1/cert.pem"), ca = Read(ca_ + "/ca.pem");
  EXPECT_EQ(ReadCert(cert)->serial, info.serial);
  EXPECT_TRUE(VerifyCert(cert, ca, kNow + absl::Hours(1)).ok());
  EXPECT_FALSE(VerifyCert(cert, ca, kNow + 2 * kYear).ok()) << "expired";
  ASSERT_TRUE(InitCa(dir_ + "/other", "other", kNow).ok());
  EXPECT_FALSE(VerifyCert(cert, Read(dir_ + "/other/ca.pem"), kNow).ok()) << "another CA";
  auto issued = ListIssued(ca_);
  ASSERT_TRUE(issued.ok());
  ASSERT_EQ(issued->size(), 1u);
  EXPECT_EQ((*issued)[0].info.serial, info.serial);
  EXPECT_FALSE((*issued)[0].revoked);
}

TEST_F(PkiTest, IssuingAgainRenewsWithANewSerial) {
  CertInfo a = Issue(Role::kFrontend, "hv1", "hv1");
  CertInfo b = Issue(Role::kFrontend, "hv1", "hv1");
  EXPECT_NE(a.serial, b.serial);
  EXPECT_EQ(ReadCert(Read(dir_ + "/hv1/cert.pem"))->serial, b.serial);
}

TEST_F(PkiTest, RevokedSerialsAreInTheSignedListOnly) {
  CertInfo a = Issue(Role::kAdmin, "ops", "ops");
  CertInfo b = Issue(Role::kNode, "n2", "n2");
  auto done = Revoke(ca_, {a.serial}, kNow);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ((*done)[0].who.id, "ops");
  auto serials = RevokedSerials(Read(ca_ + "/crl.pem"), Read(ca_ + "/ca.pem"));
  ASSERT_TRUE(serials.ok()) << serials.status();
  EXPECT_EQ(serials->count(a.serial), 1u);
  EXPECT_EQ(serials->count(b.serial), 0u);
  ASSERT_TRUE(InitCa(dir_ + "/other", "other", kNow).ok());
  EXPECT_FALSE(RevokedSerials(Read(ca_ + "/crl.pem"), Read(dir_ + "/other/ca.pem")).ok());
  EXPECT_TRUE(absl::IsNotFound(Revoke(ca_, {"ABCDEF"}, kNow).status()));
  EXPECT_TRUE(absl::IsNotFound(Revoke(ca_, {"../ca"}, kNow).status()));
}

TEST_F(PkiTest, TlsDirRefusesAKeyOthersCanRead) {
  Issue(Role::kNode, "n1", "n1");
  EXPECT_TRUE(TlsDir::Open(dir_ + "/n1", kNow).ok());
  chmod((dir_ + "/n1/key.pem").c_str(), 0644);
  auto t = TlsDir::Open(dir_ + "/n1", kNow);
  EXPECT_TRUE(absl::IsFailedPrecondition(t.status()));
  EXPECT_NE(t.status().message().find("key.pem"), std::string::npos) << t.status();
  EXPECT_TRUE(absl::IsFailedPrecondition(TlsDir::Open(dir_ + "/none", kNow).status()));
}

TEST(ZkAuthTest, DigestIdIsZooKeepersDigest) {
  // base64(sha1("ukai:secret")), as ZooKeeper's DigestAuthenticationProvider makes it.
  EXPECT_EQ(DigestId("ukai:secret"), "ukai:r0P630IGhoIRN+yicatNi4lmjtU=");
}

TEST_F(PkiTest, EachCertificateGetsTheZooKeeperCredentialOfItsRole) {
  Issue(Role::kNode, "n1", "n1");
  Issue(Role::kBackup, "bk", "bk");
  auto rw = ReadZkAuth(dir_ + "/n1/zk-auth");
  auto ro = ReadZkAuth(dir_ + "/bk/zk-auth");
  ASSERT_TRUE(rw.ok()) << rw.status();
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_EQ(rw->credential.substr(0, 5), "ukai:");
  EXPECT_EQ(ro->credential.substr(0, 8), "ukai-ro:");
  ASSERT_EQ(rw->acl.size(), 2u);
  EXPECT_EQ(rw->acl[0].id, DigestId(rw->credential));
  EXPECT_EQ(rw->acl[0].perms, 31);  // all
  EXPECT_EQ(rw->acl[1].id, DigestId(ro->credential));
  EXPECT_EQ(rw->acl[1].perms, 1);  // read
  EXPECT_EQ(ModeOf(dir_ + "/n1/zk-auth"), 0600);
  chmod((dir_ + "/n1/zk-auth").c_str(), 0640);
  EXPECT_FALSE(ReadZkAuth(dir_ + "/n1/zk-auth").ok());
}

TEST_F(PkiTest, AZkAuthFileWithJunkIsRefusedNamingTheLine) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/bad", "credential ukai:x\nacl ukai:y rwz\n", 0600).ok());
  auto r = ReadZkAuth(dir_ + "/bad");
  EXPECT_TRUE(absl::IsInvalidArgument(r.status()));
  EXPECT_NE(r.status().message().find("bad:2"), std::string::npos) << r.status();
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/bad", "acl\n", 0600).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ReadZkAuth(dir_ + "/bad").status()));
}

TEST(RolesTest, EveryMethodOfEveryServiceIsInTheTable) {
  const google::protobuf::DescriptorPool* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* name : {"ukai.pb.Admin", "ukai.pb.NodeOps", "ukai.pb.NodeCopy"}) {
    const google::protobuf::ServiceDescriptor* s = pool->FindServiceByName(name);
    ASSERT_NE(s, nullptr) << name;
    for (int i = 0; i < s->method_count(); ++i) {
      std::string path = "/" + std::string(name) + "/" + s->method(i)->name();
      EXPECT_NE(AllowedRoles(path), 0) << path << " is missing from security/rpc_roles.cc";
    }
  }
  EXPECT_EQ(AllowedRoles("/ukai.pb.Admin/NoSuchCall"), 0);
}

TEST_F(PkiTest, AuthorizerAdmitsByRoleAndRefusesRevoked) {
  Issue(Role::kAdmin, "ops", "ops");
  CertInfo hv = Issue(Role::kFrontend, "hv7", "hv7");
  auto revoked = std::make_shared<Revocations>("", "", SystemClock());
  Authorizer authz(revoked);
  const std::string admin = Read(dir_ + "/ops/cert.pem"), front = Read(dir_ + "/hv7/cert.pem");
  EXPECT_EQ(authz.Check("/ukai.pb.Admin/CreateDisk", admin)->id, "ops");
  auto denied = authz.Check("/ukai.pb.Admin/DeleteDisk", front);
  EXPECT_TRUE(absl::IsPermissionDenied(denied.status()));
  EXPECT_EQ(denied.status().message(),
            "refused: frontend hv7 may not call Admin.DeleteDisk (admin only)");
  EXPECT_TRUE(authz.Check("/ukai.pb.NodeOps/Ping", front).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(authz.Check("/ukai.pb.NodeCopy/CopyBlock", front).status()));
  EXPECT_TRUE(absl::IsPermissionDenied(authz.Check("/x.Y/Z", admin).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(authz.Check("/ukai.pb.NodeOps/Ping", "junk").status()));
  revoked->Set({hv.serial});
  EXPECT_TRUE(absl::IsUnauthenticated(authz.Check("/ukai.pb.NodeOps/Ping", front).status()));
}

// A real server with mutual TLS: the fake admin says who called.
class FakeAdmin final : public pb::Admin::Service {
 public:
  grpc::Status CreateDisk(grpc::ServerContext* ctx, const pb::CreateDiskRequest*,
                          pb::DiskInfo* out) override {
    out->mutable_spec()->set_name(CallerOf(*ctx));
    return grpc::Status::OK;
  }
};

class MutualTlsTest : public PkiTest {
 protected:
  void SetUp() override {
    now_ = absl::Now();  // the TLS handshakes check validity on the real clock
    PkiTest::SetUp();
    Issue(Role::kNode, "n1", "n1");
    auto sec = TransportSecurity::Mutual(dir_ + "/n1", &clock_);
    ASSERT_TRUE(sec.ok()) << sec.status();
    server_sec_ = *sec;
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", server_sec_->ServerCredentials(), &port_);
    b.RegisterService(&admin_);
    server_ = b.BuildAndStart();
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    server_->Shutdown();
    PkiTest::TearDown();
  }
  // CreateDisk over a channel made by `channels`: the caller the server saw.
  absl::StatusOr<std::string> CreateAs(const ChannelFactory& channels) {
    return CreateOn(channels("127.0.0.1:" + std::to_string(port_)));
  }
  absl::StatusOr<std::string> CreateOn(std::shared_ptr<grpc::Channel> channel) {
    auto stub = pb::Admin::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pb::CreateDiskRequest req;
    pb::DiskInfo resp;
    grpc::Status s = stub->CreateDisk(&ctx, req, &resp);
    if (!s.ok()) return absl::Status(absl::StatusCode(s.error_code()), s.error_message());
    return resp.spec().name();
  }
  ChannelFactory As(const std::string& out) {
    auto sec = TransportSecurity::Mutual(dir_ + "/" + out, &clock_);
    EXPECT_TRUE(sec.ok()) << sec.status();
    return (*sec)->Channels();
  }
  FakeClock clock_{absl::Now()};
  std::shared_ptr<const TransportSecurity> server_sec_;
  FakeAdmin admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(MutualTlsTest, AdminMayCallAndTheHandlerKnowsWho) {
  Issue(Role::kAdmin, "ops", "ops");
  EXPECT_EQ(*CreateAs(As("ops")), "admin ops");
}

TEST_F(MutualTlsTest, FrontendIsRefusedWithAReason) {
  Issue(Role::kFrontend, "hv7", "hv7");
  auto r = CreateAs(As("hv7"));
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("admin only"), std::string::npos) << r.status();
}

TEST_F(MutualTlsTest, NoCertificateOrAnotherCaCannotConnect) {
  EXPECT_TRUE(absl::IsUnavailable(CreateAs(InsecureChannels()).status()));
  ASSERT_TRUE(InitCa(dir_ + "/evil-ca", "evil", absl::Now()).ok());
  ASSERT_TRUE(
      IssueCert(dir_ + "/evil-ca", {Role::kAdmin, "ops"}, kYear, dir_ + "/evil", absl::Now()).ok());
  EXPECT_TRUE(absl::IsUnavailable(CreateAs(As("evil")).status()));
}

TEST_F(MutualTlsTest, AServerThatIsNotANodeIsRefusedByTheClient) {
  Issue(Role::kAdmin, "ops", "ops");
  Issue(Role::kFrontend, "fake-node", "fake-node");
  auto sec = TransportSecurity::Mutual(dir_ + "/fake-node", &clock_);
  ASSERT_TRUE(sec.ok());
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", (*sec)->ServerCredentials(), &port);
  FakeAdmin admin;
  b.RegisterService(&admin);
  auto server = b.BuildAndStart();
  port_ = port;  // CreateAs dials it
  EXPECT_TRUE(absl::IsUnavailable(CreateAs(As("ops")).status()));
  server->Shutdown();
}

TEST_F(MutualTlsTest, ARevokedCertificateIsRefusedOnAnOpenChannel) {
  CertInfo ops = Issue(Role::kAdmin, "ops", "ops");
  auto channel = As("ops")("127.0.0.1:" + std::to_string(port_));
  ASSERT_TRUE(CreateOn(channel).ok());
  ASSERT_TRUE(Revoke(ca_, {ops.serial}, now_).ok());
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/n1/crl.pem", Read(ca_ + "/crl.pem"), 0644).ok());
  clock_.Advance(absl::Seconds(2));  // past the once-a-second look
  auto r = CreateOn(channel);
  EXPECT_TRUE(absl::IsUnauthenticated(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("revoked"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace ukai::security
