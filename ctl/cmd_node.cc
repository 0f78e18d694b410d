// ukaictl node list|drain|remove.
#include <CLI/CLI.hpp>

#include "common/status.h"
#include "ctl/format.h"
#include "ctl/ukaictl.h"

namespace ukai::ctl {
namespace {

struct NodeArgs {
  std::string id;
  bool undo = false;
};

absl::Status NodeList(const Cli& cli) {
  ASSIGN_OR_RETURN(auto resp, (Call<pb::ListNodesRequest, pb::ListNodesResponse>(
                                  cli, &AdminStub::ListNodes, pb::ListNodesRequest())));
  if (cli.g.json) {
    PrintJson(NodesJson(resp));
  } else {
    PrintNodesText(resp);
  }
  return absl::OkStatus();
}

absl::Status NodeDrain(const Cli& cli, const NodeArgs& a) {
  pb::NodeRequest req;
  req.set_id(a.id);
  req.set_undo(a.undo);
  ASSIGN_OR_RETURN(auto r,
                   (Call<pb::NodeRequest, pb::NodeStatus>(cli, &AdminStub::DrainNode, req)));
  if (cli.g.json) {
    PrintJson(json{{"id", a.id}, {"draining", r.state().draining()}});
  } else {
    printf("node %s %s\n", a.id.c_str(), r.state().draining() ? "is draining" : "is not draining");
  }
  return absl::OkStatus();
}

absl::Status NodeRemove(const Cli& cli, const NodeArgs& a) {
  pb::NodeRequest req;
  req.set_id(a.id);
  RETURN_IF_ERROR(
      (Call<pb::NodeRequest, pb::NodeStatus>(cli, &AdminStub::RemoveNode, req).status()));
  if (cli.g.json) {
    PrintJson(json{{"removed", a.id}});
  } else {
    printf("node %s removed\n", a.id.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

void AddNodeCommands(CLI::App* app, Cli* cli) {
  auto a = std::make_shared<NodeArgs>();
  auto* node = app->add_subcommand("node", "storage nodes");
  node->require_subcommand(1);
  auto* list = node->add_subcommand(
      "list",
      "list nodes: id, site, address, up/down, space used, block replicas held (a "
      "drained or rebuilt node's falls to 0)");
  OnRun(list, cli, [cli] { return NodeList(*cli); });
  auto* drain = node->add_subcommand(
      "drain",
      "move every replica off a node, to other nodes of its site first (another "
      "site only where a disk's policy allows it): the nodes' repair scans start a "
      "repair job per disk. The node keeps serving meanwhile; watch BLOCKS in "
      "`node list` fall to 0, then stop it and `node remove` it");
  drain->add_option("id", a->id, "node id")->required();
  drain->add_flag("--undo", a->undo, "stop draining (replicas already moved stay moved)");
  OnRun(drain, cli, [cli, a] { return NodeDrain(*cli, *a); });
  auto* remove = node->add_subcommand(
      "remove",
      "forget a node for good: refused while it is up or still holds a replica "
      "(drain it first)");
  remove->add_option("id", a->id, "node id")->required();
  OnRun(remove, cli, [cli, a] { return NodeRemove(*cli, *a); });
}

}  // namespace ukai::ctl
