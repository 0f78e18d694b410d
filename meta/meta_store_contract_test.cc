// The MetaStore contract. Runs against MemMetaStore always and against a real
// ZooKeeper when UKAI_TEST_ZK=host:port is set (the integration tier does).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "meta/meta_store.h"

namespace ukai::meta {
namespace {

struct Env {
  std::shared_ptr<MemMetaTree> tree;
  std::string zk;
};

class MetaStoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "zk") {
      zk_ = getenv("UKAI_TEST_ZK");
      root_ = absl::StrCat("/contract-", getpid(), "-", absl::ToUnixNanos(absl::Now()));
    } else {
      tree_ = NewMemMetaTree();
      root_ = "/t";
    }
    store_ = NewSession();
    ASSERT_TRUE(store_->Create(root_, "").ok());
  }
  void TearDown() override {
    if (store_) (void)DeleteRecursive(*store_, root_);
  }
  std::unique_ptr<MetaStore> NewSession() {
    if (!zk_.empty()) {
      auto s = NewZkMetaStore(zk_, ZkAuth{});
      EXPECT_TRUE(s.ok()) << s.status();
      return s.ok() ? std::move(*s) : nullptr;
    }
    return NewMemMetaStore(tree_);
  }
  std::string P(const std::string& s) { return root_ + "/" + s; }

  std::shared_ptr<MemMetaTree> tree_;
  std::string zk_;
  std::string root_;
  std::unique_ptr<MetaStore> store_;
};

TEST_P(MetaStoreContractTest, CreateThenGetReturnsDataAndVersionZero) {
  ASSERT_TRUE(store_->Create(P("a"), "hello").ok());
  auto v = store_->Get(P("a"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->data, "hello");
  EXPECT_EQ(v->version, 0);
}

TEST_P(MetaStoreContractTest, CreateFailsWhenNodeExists) {
  ASSERT_TRUE(store_->Create(P("a"), "").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(store_->Create(P("a"), "").status()));
}

TEST_P(MetaStoreContractTest, CreateFailsWithoutParent) {
  EXPECT_TRUE(absl::IsNotFound(store_->Create(P("x/y"), "").status()));
}

TEST_P(MetaStoreContractTest, SetIsCompareAndSet) {
  ASSERT_TRUE(store_->Create(P("a"), "1").ok());
  auto v1 = store_->Set(P("a"), "2", 0);
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ(*v1, 1);
  EXPECT_TRUE(absl::IsAborted(store_->Set(P("a"), "3", 0).status()));
  EXPECT_EQ(store_->Get(P("a"))->data, "2");
  EXPECT_TRUE(store_->Set(P("a"), "4", -1).ok());
}

TEST_P(MetaStoreContractTest, DeleteRefusesNodeWithChildren) {
  ASSERT_TRUE(store_->Create(P("a"), "").ok());
  ASSERT_TRUE(store_->Create(P("a/b"), "").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Delete(P("a"))));
  EXPECT_TRUE(DeleteRecursive(*store_, P("a")).ok());
  EXPECT_TRUE(absl::IsNotFound(store_->Get(P("a")).status()));
}

TEST_P(MetaStoreContractTest, ChildrenAreSortedNames) {
  ASSERT_TRUE(store_->Create(P("b"), "").ok());
  ASSERT_TRUE(store_->Create(P("a"), "").ok());
  ASSERT_TRUE(store_->Create(P("a/deep"), "").ok());
  auto kids = store_->Children(root_);
  ASSERT_TRUE(kids.ok());
  EXPECT_EQ(*kids, (std::vector<std::string>{"a", "b"}));
}

TEST_P(MetaStoreContractTest, SequentialNamesIncrease) {
  auto a = store_->Create(P("s"), "", CreateMode::kSequential);
  auto b = store_->Create(P("s"), "", CreateMode::kSequential);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(*a, *b);
  EXPECT_EQ(a->size(), P("s").size() + 10);
}

TEST_P(MetaStoreContractTest, MultiIsAllOrNothing) {
  ASSERT_TRUE(store_->Create(P("a"), "x").ok());
  absl::Status s = store_->Multi({Op::Create(P("new"), ""), Op::Set(P("a"), "y", 7)});
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_TRUE(absl::IsNotFound(store_->Get(P("new")).status()));
  EXPECT_EQ(store_->Get(P("a"))->data, "x");
  EXPECT_TRUE(
      store_->Multi({Op::Create(P("new"), ""), Op::Set(P("a"), "y", 0), Op::Check(P("a"), 1)})
          .ok());
  EXPECT_EQ(store_->Get(P("a"))->data, "y");
}

TEST_P(MetaStoreContractTest, DataWatchFiresOnceOnChange) {
  ASSERT_TRUE(store_->Create(P("a"), "").ok());
  std::atomic<int> fired{0};
  absl::Notification done;
  ASSERT_TRUE(store_
                  ->Get(P("a"),
                        [&] {
                          fired++;
                          done.Notify();
                        })
                  .ok());
  ASSERT_TRUE(store_->Set(P("a"), "1", -1).ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(store_->Set(P("a"), "2", -1).ok());
  ASSERT_TRUE(store_->Get(P("a")).ok());  // a round trip after the second change
  EXPECT_EQ(fired.load(), 1);
}

TEST_P(MetaStoreContractTest, WatchOnMissingNodeFiresOnCreate) {
  absl::Notification done;
  EXPECT_TRUE(absl::IsNotFound(store_->Get(P("later"), [&] { done.Notify(); }).status()));
  ASSERT_TRUE(store_->Create(P("later"), "").ok());
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST_P(MetaStoreContractTest, ChildWatchFiresOnCreateAndDelete) {
  absl::Notification created, deleted;
  ASSERT_TRUE(store_->Children(root_, [&] { created.Notify(); }).ok());
  ASSERT_TRUE(store_->Create(P("c"), "").ok());
  ASSERT_TRUE(created.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(store_->Children(root_, [&] { deleted.Notify(); }).ok());
  ASSERT_TRUE(store_->Delete(P("c")).ok());
  EXPECT_TRUE(deleted.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST_P(MetaStoreContractTest, EphemeralsVanishWithTheirSession) {
  auto other = NewSession();
  ASSERT_TRUE(other->Create(P("e"), "", CreateMode::kEphemeral).ok());
  absl::Notification gone;
  ASSERT_TRUE(store_->Get(P("e"), [&] { gone.Notify(); }).ok());
  other.reset();
  ASSERT_TRUE(gone.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(absl::IsNotFound(store_->Get(P("e")).status()));
}

// The ZooKeeper variant exists only when a server is given, so the unit tier
// (which has none) lists no skipped tests.
std::vector<std::string> Stores() {
  if (getenv("UKAI_TEST_ZK") != nullptr) return {"mem", "zk"};
  return {"mem"};
}
INSTANTIATE_TEST_SUITE_P(Stores, MetaStoreContractTest, ::testing::ValuesIn(Stores()));

// Digest ACLs are ZooKeeper's alone (the in-memory store has no identities).
TEST(ZkAclTest, ZnodesCarryTheAclAndOthersAreRefused) {
  const char* zk = getenv("UKAI_TEST_ZK");
  if (zk == nullptr) return;  // the integration tier gives a server
  ZkAuth auth;
  auth.credential = "ukai:secret";
  // base64(sha1("ukai:secret")), ZooKeeper's digest of that credential.
  auth.acl.push_back({"ukai:r0P630IGhoIRN+yicatNi4lmjtU=", 31});
  auto owner = NewZkMetaStore(zk, auth);
  ASSERT_TRUE(owner.ok()) << owner.status();
  std::string root = absl::StrCat("/acl-", getpid(), "-", absl::ToUnixNanos(absl::Now()));
  ASSERT_TRUE((*owner)->Create(root, "x").ok());
  ASSERT_TRUE((*owner)->Create(root + "/c", "y").ok());
  EXPECT_EQ((*owner)->Get(root + "/c")->data, "y");

  ZkAuth wrong;
  wrong.credential = "ukai:guess";
  for (const ZkAuth& who : {ZkAuth{}, wrong}) {
    auto other = NewZkMetaStore(zk, who);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_TRUE(absl::IsPermissionDenied((*other)->Get(root).status()));
    EXPECT_TRUE(absl::IsPermissionDenied((*other)->Children(root).status()));
    EXPECT_TRUE(absl::IsPermissionDenied((*other)->Set(root + "/c", "z", -1).status()));
    EXPECT_TRUE(absl::IsPermissionDenied((*other)->Delete(root + "/c", -1)));
  }
  EXPECT_EQ((*owner)->Get(root + "/c")->data, "y");
  EXPECT_TRUE((*owner)->Delete(root + "/c", -1).ok());
  EXPECT_TRUE((*owner)->Delete(root, -1).ok());
}

TEST(MemMetaStoreTest, ExpiryDropsEphemeralsFiresWatchesAndCallsListener) {
  auto tree = NewMemMetaTree();
  auto a = NewMemMetaStore(tree);
  auto b = NewMemMetaStore(tree);
  ASSERT_TRUE(a->Create("/e", "", CreateMode::kEphemeral).ok());
  ASSERT_TRUE(a->Create("/p", "").ok());
  absl::Notification watch_fired, listener_ran;
  ASSERT_TRUE(a->Get("/p", [&] { watch_fired.Notify(); }).ok());
  a->SetSessionListener([&] { listener_ran.Notify(); });
  ExpireMemSession(a.get());
  ASSERT_TRUE(listener_ran.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(watch_fired.HasBeenNotified());
  EXPECT_TRUE(absl::IsNotFound(b->Get("/e").status()));
  EXPECT_TRUE(a->Create("/e", "", CreateMode::kEphemeral).ok());  // usable again
}

}  // namespace
}  // namespace ukai::meta
