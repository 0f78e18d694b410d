// ukaictl without a cluster: the commands run against an in-process fake
// Admin service that records what it was asked, so the tests see the
// requests the flags make, the output, and the exit status.
#include "ctl/ukaictl.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "ctl/format.h"
#include "ctl/jobs.h"

namespace ukai::ctl {
namespace {

class FakeAdmin final : public pb::Admin::Service {
 public:
  grpc::Status CreateDisk(grpc::ServerContext*, const pb::CreateDiskRequest* req,
                          pb::DiskInfo* resp) override {
    created.push_back(*req);
    resp->mutable_spec()->set_name(req->name());
    resp->mutable_spec()->set_size(req->size());
    *resp->mutable_spec()->mutable_placement() = req->placement();
    return grpc::Status::OK;
  }
  grpc::Status GetDisk(grpc::ServerContext*, const pb::DiskRequest* req,
                       pb::DiskInfo* resp) override {
    if (req->name() != disk.name()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no disk named '" + req->name() + "'");
    }
    *resp->mutable_spec() = disk;
    return grpc::Status::OK;
  }
  grpc::Status SetPolicy(grpc::ServerContext*, const pb::SetPolicyRequest* req,
                         pb::DiskInfo* resp) override {
    policies.push_back(*req);
    *resp->mutable_spec() = disk;
    *resp->mutable_spec()->mutable_failure() = req->failure();
    return grpc::Status::OK;
  }
  grpc::Status Relocate(grpc::ServerContext*, const pb::RelocateRequest* req,
                        pb::JobRecord* resp) override {
    relocations.push_back(*req);
    resp->set_id("job-1");
    resp->set_disk_name(req->name());
    return grpc::Status::OK;
  }

  pb::DiskSpec disk;
  std::vector<pb::CreateDiskRequest> created;
  std::vector<pb::SetPolicyRequest> policies;
  std::vector<pb::RelocateRequest> relocations;
};

class UkaictlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.RegisterService(&admin_);
    server_ = b.BuildAndStart();
    admin_.disk.set_name("d");
    admin_.disk.set_size(1 << 30);
    admin_.disk.mutable_placement()->set_replicas(2);
    admin_.disk.mutable_failure()->set_min_replicas(2);
    admin_.disk.mutable_failure()->set_hold_ms(5000);
  }
  void TearDown() override { server_->Shutdown(); }

  // Runs ukaictl with `args`; its exit status, stdout and stderr.
  struct Run {
    int status;
    std::string out, err;
  };
  Run Ukaictl(std::vector<const char*> args) {
    args.insert(args.begin(), "ukaictl");
    Cli cli;
    cli.connect = [this](const Globals&) -> absl::StatusOr<std::unique_ptr<AdminStub>> {
      return std::unique_ptr<AdminStub>(
          pb::Admin::NewStub(server_->InProcessChannel(grpc::ChannelArguments())));
    };
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    int status = RunUkaictl(static_cast<int>(args.size()), args.data(), &cli);
    std::string out = ::testing::internal::GetCapturedStdout();
    return {status, out, ::testing::internal::GetCapturedStderr()};
  }

  FakeAdmin admin_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(UkaictlTest, DiskCreateSendsWhatTheFlagsSay) {
  Run r = Ukaictl({"disk", "create", "vm1", "--size", "20G", "--replicas", "3", "--sites", "a,b",
                   "--on-replica-failure", "wait", "--hold", "2m", "--block-size", "1M"});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(admin_.created.size(), 1u);
  const pb::CreateDiskRequest& req = admin_.created[0];
  EXPECT_EQ(req.name(), "vm1");
  EXPECT_EQ(req.size(), 20ull << 30);
  EXPECT_EQ(req.block_size(), 1u << 20);
  EXPECT_EQ(req.placement().replicas(), 3u);
  ASSERT_EQ(req.placement().sites_size(), 2);
  EXPECT_EQ(req.placement().sites(1), "b");
  EXPECT_EQ(req.failure().on_replica_failure(), pb::FailurePolicy::WAIT);
  EXPECT_EQ(req.failure().hold_ms(), 120000u);
  EXPECT_EQ(r.out, "created disk vm1: 20.0 GiB, 3 replica(s) in sites a,b\n");
}

TEST_F(UkaictlTest, BadArgumentsFailWithOneLineAndSendNothing) {
  struct Case {
    std::vector<const char*> args;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{"disk", "create", "x", "--size", "12Q"}, "12Q"},
           {{"disk", "create", "x", "--size", "1G", "--min-replicas", "0"},
            "--min-replicas must be between 1 and 8"},
           {{"disk", "create", "x", "--size", "1G", "--hold", "forever"}, "--hold: 'forever'"},
           {{"disk", "create", "x", "--size", "1G", "--replicas", "-1"},
            "--replicas must be positive"},
           {{"relocate", "d"}, "say where to: --sites or --nodes"},
       }) {
    Run r = Ukaictl(c.args);
    EXPECT_EQ(r.status, 1) << c.error;
    EXPECT_NE(r.err.find("ukaictl: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.error), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_TRUE(admin_.created.empty());
  EXPECT_TRUE(admin_.relocations.empty());
}

TEST_F(UkaictlTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Ukaictl({"disk", "create", "x"}).status, 2);  // --size is required
  EXPECT_EQ(Ukaictl({"disk", "frobnicate"}).status, 2);
  EXPECT_EQ(
      Ukaictl({"disk", "create", "x", "--size", "1G", "--sites", "a", "--nodes", "n1"}).status, 2);
}

TEST_F(UkaictlTest, AnAdminErrorIsOneLineAndExitOne) {
  Run r = Ukaictl({"disk", "info", "nope"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "ukaictl: no disk named 'nope'\n");
}

TEST_F(UkaictlTest, PolicyChangesOnlyTheFlagsGiven) {
  Run r = Ukaictl({"disk", "policy", "d", "--hold", "1m"});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(admin_.policies.size(), 1u);
  EXPECT_EQ(admin_.policies[0].failure().min_replicas(), 2u);  // kept
  EXPECT_EQ(admin_.policies[0].failure().hold_ms(), 60000u);
  EXPECT_EQ(r.out,
            "disk d: on replica failure, degrade down to 2 replica(s); I/O short of them "
            "is held 1m, then EIO\n");
}

TEST_F(UkaictlTest, JsonGoesToStdoutWhereverTheFlagStands) {
  Run r = Ukaictl({"disk", "info", "d", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["name"], "d");
  EXPECT_EQ(j["size"], 1 << 30);
  EXPECT_EQ(j["on_replica_failure"], "degrade");
  EXPECT_EQ(j["min_replicas"], 2);
  EXPECT_TRUE(j["parent"].is_null());
  r = Ukaictl({"--json", "relocate", "d", "--sites", "b", "--bandwidth", "100M"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["job"], "job-1");
  EXPECT_EQ(admin_.relocations.at(0).bandwidth_bps(), 100u << 20);
}

TEST(ConnectAdminTest, WithoutAnAddressSaysWhereToGiveOne) {
  unsetenv("UKAI_ADMIN");
  auto s = ConnectAdmin(Globals());
  EXPECT_TRUE(absl::IsInvalidArgument(s.status()));
  EXPECT_NE(s.status().message().find("UKAI_ADMIN"), std::string::npos);
}

TEST(FormatTest, PlacementPolicyAndProgress) {
  pb::Placement p;
  p.set_replicas(2);
  p.add_nodes("n1");
  p.add_nodes("n2");
  EXPECT_EQ(PlacementText(p), "2 replica(s) on nodes n1,n2");
  pb::DiskSpec d;
  d.mutable_placement()->set_replicas(3);
  d.mutable_failure()->set_on_replica_failure(pb::FailurePolicy::WAIT);
  EXPECT_EQ(PolicyText(d), "wait for all 3 replicas; I/O short of them is held 30s, then EIO");
  EXPECT_EQ(Time(0), "-");
  pb::JobRecord j;
  j.set_bytes_total(400);
  j.set_bytes_done(100);
  EXPECT_DOUBLE_EQ(JobFraction(j), 0.25);
  j.set_state(pb::JobRecord::DONE);
  EXPECT_DOUBLE_EQ(JobFraction(j), 1.0);
  EXPECT_EQ(Duration(59.6), "1:00");
  EXPECT_EQ(Duration(3725), "1:02:05");
  EXPECT_EQ(Duration(-1), "--:--");
}

}  // namespace
}  // namespace ukai::ctl
