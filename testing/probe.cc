// ukai-probe: a test-only tool that sends what an attacker who holds some
// cluster credential would send, so that tests/integration/multihost.sh can
// check each is refused. It reads what it needs (a disk's writer epoch,
// layout and replicas) from ZooKeeper with the TLS directory's credential,
// as a frontend's host that was taken over could. Exit 0: the node accepted;
// 1: refused, with the node's answer as one line on stderr.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/clock.h"
#include "common/status.h"
#include "common/wire_client.h"
#include "common/wire_format.h"
#include "meta/catalog.h"
#include "meta/layout.h"
#include "meta/meta_store.h"
#include "security/transport.h"
#include "ukai.grpc.pb.h"

namespace {

namespace pb = ukai::pb;

struct Target {
  pb::DiskSpec spec;
  uint64_t epoch = 0;
  pb::BlockPtr block0;
  std::map<std::string, pb::NodeInfo> nodes;
};

// The disk's spec, writer epoch, block 0's pointer and the nodes.
absl::StatusOr<Target> Look(ukai::meta::Catalog& catalog, const std::string& disk) {
  Target t;
  ASSIGN_OR_RETURN(t.spec, catalog.GetByName(disk));
  ASSIGN_OR_RETURN(pb::WriterRecord w, catalog.Writer(t.spec.id()));
  t.epoch = w.epoch();
  ASSIGN_OR_RETURN(auto chunk, catalog.ReadChunk(t.spec.id(), 0));
  if (!chunk.has_value() || chunk->chunk.blocks_size() == 0 ||
      chunk->chunk.blocks(0).replicas_size() == 0) {
    return absl::FailedPreconditionError("block 0 of " + disk + " was never written");
  }
  t.block0 = chunk->chunk.blocks(0);
  ASSIGN_OR_RETURN(auto nodes, catalog.ListNodes());
  for (auto& n : nodes) t.nodes[n.id()] = n;
  return t;
}

// A 4 KiB write at block 0 under the disk's current epoch, to every replica.
absl::Status StealWrite(const Target& t, const ukai::security::TransportSecurity& sec) {
  pb::WriteRequest w;
  w.mutable_hdr()->set_disk_id(t.spec.id());
  w.mutable_hdr()->set_layout_version(t.spec.layout_version());
  w.mutable_hdr()->set_epoch(t.epoch);
  w.set_block(0);
  w.set_generation(t.block0.generation());
  std::string data(4096, '\xee');
  for (const pb::Replica& r : t.block0.replicas()) {
    auto n = t.nodes.find(r.node());
    if (n == t.nodes.end()) return absl::NotFoundError("replica node " + r.node() + " unknown");
    ukai::wire::WireClientOptions o;
    o.security = sec.wire();
    ukai::wire::WireClient c(n->second.io_address(), o);
    ukai::wire::WireCall call;
    call.method = ukai::wire::kWrite;
    call.meta = w.SerializeAsString();
    call.data = data.data();
    call.data_len = data.size();
    ukai::wire::WireWaiter waiter;
    c.Start(&call, &waiter);
    waiter.WaitAll(absl::Now() + absl::Seconds(10));
    RETURN_IF_ERROR(call.status);
  }
  return absl::OkStatus();
}

// Asks node `to` to copy block 0 from `source`, said to be at `address`.
absl::Status ForgeCopy(const Target& t, const ukai::security::TransportSecurity& sec,
                       const std::string& to, const std::string& source,
                       const std::string& address) {
  const auto& replicas = t.block0.replicas();
  std::string target = !to.empty() ? to : replicas[0].node();
  std::string from = !source.empty()       ? source
                     : replicas.size() > 1 ? replicas[1].node()
                                           : replicas[0].node();
  auto n = t.nodes.find(target);
  if (n == t.nodes.end()) return absl::NotFoundError("no node " + target);
  auto stub = pb::NodeCopy::NewStub(sec.Channels()(n->second.address()));
  pb::CopyBlockRequest req;
  req.mutable_hdr()->set_disk_id(t.spec.id());
  req.mutable_hdr()->set_layout_version(t.spec.layout_version());
  req.set_block(0);
  req.set_generation(t.block0.generation());
  req.set_source(from);
  req.set_source_io_address(address);
  pb::CopyBlockResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status s = stub->CopyBlock(&ctx, req, &resp);
  if (!s.ok())
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ukai-probe: send what an attacker with a cluster credential would (tests only)"};
  std::string zk, root = "/ukai", tls_dir, disk, to, source, address;
  app.add_option("--zk", zk, "ZooKeeper ensemble")->required();
  app.add_option("--zk-root", root, "root znode of the cluster");
  app.add_option("--tls-dir", tls_dir, "the credential to act with")->required();
  app.add_option("--disk", disk, "the disk to attack")->required();
  app.require_subcommand(1);
  app.add_subcommand("write", "write block 0 under the disk's current writer epoch");
  CLI::App* copy = app.add_subcommand("copy", "ask a node to copy block 0 from a source");
  copy->add_option("--to", to, "node asked to copy (default: block 0's first replica)");
  copy->add_option("--source", source, "the source node id claimed (default: its second)");
  copy->add_option("--source-address", address, "its block I/O address claimed (default: none)");
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const absl::Status& s) {
    fprintf(stderr, "ukai-probe: %s\n", std::string(s.message()).c_str());
    return 1;
  };
  auto sec = ukai::security::TransportSecurity::Mutual(tls_dir, ukai::SystemClock());
  if (!sec.ok()) return fail(sec.status());
  auto store = ukai::meta::NewZkMetaStore(zk, (*sec)->zk_auth(), 10000);
  if (!store.ok()) return fail(store.status());
  ukai::meta::Catalog catalog(store->get(), root);
  auto t = Look(catalog, disk);
  if (!t.ok()) return fail(t.status());
  absl::Status s =
      copy->parsed() ? ForgeCopy(*t, **sec, to, source, address) : StealWrite(*t, **sec);
  if (!s.ok()) return fail(s);
  printf("accepted\n");
  return 0;
}
