#include "meta/placement.h"

#include <gtest/gtest.h>

#include <set>

namespace ukai::meta {
namespace {

std::vector<pb::NodeInfo> Cluster() {
  std::vector<pb::NodeInfo> v;
  for (auto [id, site] : {std::pair{"n1", "a"}, {"n2", "a"}, {"n3", "b"}}) {
    pb::NodeInfo n;
    n.set_id(id);
    n.set_site(site);
    v.push_back(n);
  }
  return v;
}

pb::Placement Policy(int replicas, std::vector<std::string> sites = {},
                     std::vector<std::string> nodes = {}) {
  pb::Placement p;
  p.set_replicas(replicas);
  for (auto& s : sites) p.add_sites(s);
  for (auto& n : nodes) p.add_nodes(n);
  return p;
}

TEST(PlacementTest, ValidateRejectsUnknownSitesNodesAndTooManyReplicas) {
  EXPECT_TRUE(ValidatePlacement(Policy(2), Cluster()).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(ValidatePlacement(Policy(4), Cluster())));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidatePlacement(Policy(1, {"mars"}), Cluster())));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidatePlacement(Policy(1, {}, {"n9"}), Cluster())));
  EXPECT_TRUE(absl::IsFailedPrecondition(ValidatePlacement(Policy(2, {"b"}), Cluster())));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidatePlacement(Policy(0), Cluster())));
}

TEST(PlacementTest, DefaultPrefersTheWritersSite) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto r = ChooseReplicas(Policy(2), Cluster(), "a", seed);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(std::set<std::string>(r->begin(), r->end()), (std::set<std::string>{"n1", "n2"}));
  }
  auto r = ChooseReplicas(Policy(1), Cluster(), "b", 3);
  EXPECT_EQ(*r, std::vector<std::string>{"n3"});
}

TEST(PlacementTest, SitesAreSpreadRoundRobin) {
  auto r = ChooseReplicas(Policy(2, {"b", "a"}), Cluster(), "a", 7);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0], "n3");
  EXPECT_NE((*r)[1], "n3");
}

TEST(PlacementTest, SpreadsChunksOverNodesBySeed) {
  std::set<std::string> firsts;
  for (uint64_t seed = 0; seed < 50; ++seed)
    firsts.insert((*ChooseReplicas(Policy(1), Cluster(), "a", seed))[0]);
  EXPECT_EQ(firsts, (std::set<std::string>{"n1", "n2"}));
}

TEST(PlacementTest, DegradesToLiveNodesAndFailsWithNone) {
  auto live = Cluster();
  live.erase(live.begin());  // n1 down
  auto r = ChooseReplicas(Policy(2, {}, {"n1", "n2"}), live, "a", 1);
  EXPECT_EQ(*r, std::vector<std::string>{"n2"});
  EXPECT_TRUE(absl::IsUnavailable(ChooseReplicas(Policy(1, {}, {"n1"}), live, "a", 1).status()));
}

}  // namespace
}  // namespace ukai::meta
