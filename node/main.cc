// ukai-node: the storage daemon. Parses flags and wires the pieces; nothing else.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/executor.h"
#include "common/log.h"
#include "common/process.h"
#include "common/status.h"
#include "common/units.h"
#include "common/wire_server.h"
#include "common/wire_socket.h"
#include "control/admin_service.h"
#include "control/grpc_node_peers.h"
#include "control/job_runner.h"
#include "control/repair_scanner.h"
#include "meta/catalog.h"
#include "node/block_io.h"
#include "node/collector.h"
#include "node/copy_service.h"
#include "node/disk_registry.h"
#include "node/local_scrubber.h"
#include "node/node_ops_service.h"
#include "security/audit.h"
#include "security/transport.h"

namespace {

int Fail(const std::string& msg) {
  fprintf(stderr, "ukai-node: %s\n", msg.c_str());
  return 1;
}

// Everything on the command line, as given.
struct NodeFlags {
  std::string id, site, listen, io_listen, zk = "127.0.0.1:2181", root = "/ukai", data, tls_dir,
                                           run_dir = "/run/ukai";
  std::string capacity = "0", store_kind = "extent", copy_bandwidth = "0", repair_bandwidth = "0",
              scrub_bandwidth = "20M";
  int zk_session_ms = 10000;
  bool no_blob = false, verbose = false, no_local = false, plaintext = false;
  int test_site_delay_ms = 0, repair_interval_s = 10, rereplicate_after_s = 600;
  int scrub_every_s = 7 * 86400, collect_every_s = 3600;
  // Block I/O limits (wire::WireLimits).
  int io_max_connections = 1024, io_max_per_peer = 64, io_frame_timeout_s = 30,
      io_send_timeout_s = 30;
  std::string io_max_request_bytes = "1G", io_max_peer_bytes = "256M";
  int job_keep_hours = 24 * 7, job_keep_max = 1000;
  // gRPC limits (RpcLimits).
  int rpc_max_threads = 256;
  std::string rpc_max_memory = "1G";
};

// The flags' sizes and rates, checked.
struct NodeLimits {
  uint64_t capacity = 0, copy_cap = 0, scrub_cap = 0, repair_cap = 0;
  absl::Duration site_delay;
  ukai::wire::WireLimits io;
  ukai::RpcLimits rpc;
  ukai::meta::JobRetention jobs;
};

void AddServiceFlags(CLI::App& app, NodeFlags* f) {
  app.add_option("--id", f->id, "node id, unique in the cluster ([A-Za-z0-9._-])")->required();
  app.add_option("--site", f->site, "site (datacenter) label")->required();
  app.add_option("--listen", f->listen, "host:port for the data and admin services")->required();
  app.add_option("--io-listen", f->io_listen,
                 "host:port for block reads and writes (UKAI's block I/O transport); default: "
                 "the --listen host, a free port. Published in ZooKeeper, so clients find it");
  app.add_option("--run-dir", f->run_dir,
                 "directory (made 0700) for the same-host block I/O socket, io-ADDRESS.sock "
                 "(0600): frontends and nodes on this host, running as root or this user, use "
                 "it instead of TCP, which costs less CPU per request and needs no TLS")
      ->capture_default_str();
  app.add_flag("--no-local-io", f->no_local, "do not serve block I/O on the same-host socket");
  app.add_option("--zk", f->zk, "ZooKeeper ensemble host:port[,host:port...]")
      ->capture_default_str();
  app.add_option("--zk-root", f->root, "root znode of this cluster")->capture_default_str();
  app.add_option("--zk-session-ms", f->zk_session_ms,
                 "ZooKeeper session timeout: how long a dead node stays listed as up")
      ->capture_default_str();
  app.add_option("--tls-dir", f->tls_dir,
                 "this node's TLS credentials: ca.pem, cert.pem and key.pem (0600) of a node "
                 "certificate, as `ukaictl cert issue --role node` writes them, and crl.pem (the "
                 "CA's revocation list) when there is one. Every connection is mutual TLS and "
                 "every call is checked against the caller's role (docs/SECURITY.md)");
  app.add_flag("--insecure-plaintext", f->plaintext,
               "no TLS: connections neither encrypted nor authenticated, every caller may do "
               "anything. For benchmarks on a closed network only; logged as a warning");
  app.add_flag("-v,--verbose", f->verbose, "debug logging");
  app.add_option("--test-site-delay-ms", f->test_site_delay_ms,
                 "TESTS ONLY, refused unless UKAI_TEST_HOOKS=1 is in the environment: answer "
                 "block I/O and pings from frontends of other sites this many ms late, to make "
                 "sites far apart on one machine (docs/TESTING.md)");
}

void AddStoreFlags(CLI::App& app, NodeFlags* f) {
  app.add_option("--data", f->data, "directory of the node's store (created if missing)")
      ->required();
  app.add_option("--capacity", f->capacity, "advertised capacity, e.g. 100G (0: unknown)")
      ->capture_default_str();
  app.add_option("--store", f->store_kind,
                 "page store: 'extent' (data in sparse files, RocksDB indexes checksums) or "
                 "'rocksdb' (data in RocksDB blob files)")
      ->check(CLI::IsMember({"extent", "rocksdb"}))
      ->capture_default_str();
  app.add_flag("--no-blob-files", f->no_blob,
               "with --store rocksdb: keep page data in the LSM tree");
  app.add_option("--copy-bandwidth", f->copy_bandwidth,
                 "cap on all background copies into this node together, bytes/s (e.g. 200M; "
                 "0: none). Jobs can set a lower limit of their own (ukaictl relocate --bandwidth)")
      ->capture_default_str();
}

void AddLimitFlags(CLI::App& app, NodeFlags* f) {
  app.add_option("--job-keep-hours", f->job_keep_hours,
                 "hours a finished job stays in `ukaictl job list` (1 to 8760)")
      ->capture_default_str();
  app.add_option("--job-keep-max", f->job_keep_max,
                 "finished jobs kept at most; older ones are removed first (1 to 100000)")
      ->capture_default_str();
  app.add_option("--rpc-max-threads", f->rpc_max_threads,
                 "gRPC calls served at once; more are answered RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--rpc-max-memory", f->rpc_max_memory, "memory for gRPC calls' messages")
      ->capture_default_str();
  app.add_option("--io-max-connections", f->io_max_connections,
                 "block I/O connections open at once; more are closed at accept")
      ->capture_default_str();
  app.add_option("--io-max-connections-per-peer", f->io_max_per_peer,
                 "block I/O connections from one address (or one uid on the same-host socket)")
      ->capture_default_str();
  app.add_option("--io-max-request-bytes", f->io_max_request_bytes,
                 "request bytes the node holds at once for requests not yet answered; a peer "
                 "over it waits")
      ->capture_default_str();
  app.add_option("--io-max-peer-bytes", f->io_max_peer_bytes,
                 "the share of them one peer may hold (at least 65M: one largest frame)")
      ->capture_default_str();
  app.add_option("--io-frame-timeout", f->io_frame_timeout_s,
                 "seconds a frame begun may pause, and a new connection may stay silent")
      ->capture_default_str();
  app.add_option("--io-send-timeout", f->io_send_timeout_s,
                 "seconds a reply may wait for a peer that does not read; then its connection "
                 "is closed")
      ->capture_default_str();
}

void AddBackgroundFlags(CLI::App& app, NodeFlags* f) {
  app.add_option("--repair-interval", f->repair_interval_s,
                 "seconds between looks for disks with work for a repair: a stale replica on "
                 "a live node (it missed writes while down) or a replica on a node drained or "
                 "down past --rereplicate-after; each finding starts a repair job. 0: never")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  app.add_option("--repair-bandwidth", f->repair_bandwidth,
                 "copy rate limit of each repair this node's scan starts, bytes/s (e.g. 100M; "
                 "0: none). For links or disks a copy would fill; on one machine a 100M cap "
                 "doubled recovery time and cut guests' p99 rise only from 9-15x to 7-10x "
                 "(bench/RECOVERY-100M.md). `ukaictl disk repair` sets its own")
      ->capture_default_str();
  app.add_option("--rereplicate-after", f->rereplicate_after_s,
                 "seconds a node may stay down before its replicas are rebuilt on other nodes "
                 "(same site first; another site only if the disk's policy allows it)")
      ->capture_default_str()
      ->check(CLI::Range(0, 30 * 86400));
  app.add_option("--scrub-every", f->scrub_every_s,
                 "seconds between this node's slow checks of every page it stores against its "
                 "checksum (the first one this long after start); a replica with a bad page is "
                 "marked stale and repaired, unless it is the block's last clean one. 0: never")
      ->capture_default_str()
      ->check(CLI::Range(0, 365 * 86400));
  app.add_option("--collect-every", f->collect_every_s,
                 "seconds between this node's passes that drop stored objects nobody names any "
                 "more (a deleted snapshot's, missed while the node was down; an abandoned "
                 "copy-on-write). 0: never")
      ->capture_default_str()
      ->check(CLI::Range(0, 365 * 86400));
  app.add_option("--scrub-bandwidth", f->scrub_bandwidth,
                 "read rate of that check, bytes/s (0: none)")
      ->capture_default_str();
}

absl::StatusOr<uint64_t> RateFlag(const std::string& flag, const std::string& text) {
  auto v = ukai::ParseSize(text);
  if (!v.ok()) return absl::InvalidArgumentError(flag + ": " + std::string(v.status().message()));
  return *v;
}

// The block I/O limits, checked.
absl::StatusOr<ukai::wire::WireLimits> CheckIoLimits(const NodeFlags& f) {
  ukai::wire::WireLimits w;
  ASSIGN_OR_RETURN(w.max_request_bytes, RateFlag("--io-max-request-bytes", f.io_max_request_bytes));
  ASSIGN_OR_RETURN(w.max_peer_bytes, RateFlag("--io-max-peer-bytes", f.io_max_peer_bytes));
  const uint64_t frame =
      ukai::wire::kMaxDataBytes + ukai::wire::kMaxMetaBytes + ukai::wire::kRequestOverhead;
  if (w.max_peer_bytes < frame || w.max_request_bytes < w.max_peer_bytes) {
    return absl::InvalidArgumentError(
        "--io-max-peer-bytes must hold one largest frame (65M) and be at most "
        "--io-max-request-bytes");
  }
  if (f.io_max_connections < 1 || f.io_max_connections > 1000000 || f.io_max_per_peer < 1 ||
      f.io_max_per_peer > f.io_max_connections) {
    return absl::InvalidArgumentError(
        "--io-max-connections must be 1 to 1000000, and --io-max-connections-per-peer 1 to it");
  }
  if (f.io_frame_timeout_s < 1 || f.io_frame_timeout_s > 3600 || f.io_send_timeout_s < 1 ||
      f.io_send_timeout_s > 3600) {
    return absl::InvalidArgumentError("--io-frame-timeout and --io-send-timeout: 1 to 3600 s");
  }
  w.max_connections = f.io_max_connections;
  w.max_connections_per_peer = f.io_max_per_peer;
  w.frame_timeout = absl::Seconds(f.io_frame_timeout_s);
  w.send_timeout = absl::Seconds(f.io_send_timeout_s);
  return w;
}

absl::StatusOr<NodeLimits> CheckFlags(const NodeFlags& f) {
  if (!ukai::ValidateDiskName(f.id).ok()) {
    return absl::InvalidArgumentError("invalid --id '" + f.id + "'");
  }
  NodeLimits l;
  ASSIGN_OR_RETURN(l.capacity, ukai::ParseSize(f.capacity));
  if (f.test_site_delay_ms != 0) {
    const char* hooks = getenv("UKAI_TEST_HOOKS");
    if (hooks == nullptr || std::string(hooks) != "1") {
      return absl::InvalidArgumentError(
          "--test-site-delay-ms is for tests only; it needs UKAI_TEST_HOOKS=1");
    }
    if (f.test_site_delay_ms < 0 || f.test_site_delay_ms > 10000) {
      return absl::InvalidArgumentError("--test-site-delay-ms must be between 0 and 10000");
    }
  }
  l.site_delay = absl::Milliseconds(f.test_site_delay_ms);
  ASSIGN_OR_RETURN(l.copy_cap, RateFlag("--copy-bandwidth", f.copy_bandwidth));
  ASSIGN_OR_RETURN(l.scrub_cap, RateFlag("--scrub-bandwidth", f.scrub_bandwidth));
  ASSIGN_OR_RETURN(l.repair_cap, RateFlag("--repair-bandwidth", f.repair_bandwidth));
  ASSIGN_OR_RETURN(l.io, CheckIoLimits(f));
  ASSIGN_OR_RETURN(uint64_t rpc_memory, RateFlag("--rpc-max-memory", f.rpc_max_memory));
  if (f.rpc_max_threads < 16 || f.rpc_max_threads > 10000 || rpc_memory < (256u << 20)) {
    return absl::InvalidArgumentError(
        "--rpc-max-threads must be 16 to 10000, and --rpc-max-memory at least 256M");
  }
  if (f.job_keep_hours < 1 || f.job_keep_hours > 8760 || f.job_keep_max < 1 ||
      f.job_keep_max > 100000) {
    return absl::InvalidArgumentError(
        "--job-keep-hours must be 1 to 8760, --job-keep-max 1 to 100000");
  }
  l.jobs.keep = absl::Hours(f.job_keep_hours);
  l.jobs.keep_max = f.job_keep_max;
  l.rpc.max_threads = f.rpc_max_threads;
  l.rpc.max_memory = static_cast<int64_t>(rpc_memory);
  return l;
}

absl::StatusOr<std::unique_ptr<ukai::node::PageStore>> OpenPages(const NodeFlags& f) {
  // A new store directory is private: everything in it stays the node's.
  std::error_code ec;
  if (std::filesystem::create_directories(f.data, ec)) {
    std::filesystem::permissions(f.data, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }
  if (ec) return absl::UnavailableError("cannot create " + f.data + ": " + ec.message());
  ukai::node::RocksDbOptions ro;
  ro.blob_files = !f.no_blob;
  return f.store_kind == "extent" ? ukai::node::NewExtentPageStore(f.data)
                                  : ukai::node::NewRocksDbPageStore(f.data, ro);
}

// A node's certificate must name it: a node started with another's
// credentials (or a frontend's) would be refused by its peers anyway.
absl::Status CheckIdentity(const ukai::security::TransportSecurity& sec, const std::string& id) {
  if (sec.plaintext()) return absl::OkStatus();
  const ukai::security::Identity& who = sec.tls()->self.who;
  if (who.role != ukai::security::Role::kNode || who.id != id) {
    return absl::InvalidArgumentError("the certificate in " + sec.tls()->dir + " is for " +
                                      who.ToString() + ", not node " + id);
  }
  return absl::OkStatus();
}

// Starts block I/O (TCP and, unless --no-local-io, the same-host socket);
// the address clients dial, which goes into the node's record.
absl::StatusOr<std::string> StartBlockIo(const NodeFlags& f, const NodeLimits& l,
                                         ukai::wire::WireServer* io_server) {
  const std::string io_listen =
      f.io_listen.empty() ? ukai::wire::WithPort(f.listen, 0) : f.io_listen;
  if (l.site_delay > absl::ZeroDuration()) {
    LOG_WARN("TEST HOOK: answering frontends of sites other than %s %d ms late", f.site,
             f.test_site_delay_ms);
    io_server->SetReplyDelay([site = f.site, delay = l.site_delay](const std::string& peer) {
      return !peer.empty() && peer != site ? delay : absl::ZeroDuration();
    });
  }
  RETURN_IF_ERROR(io_server->Start(io_listen));
  // A wildcard listen address is not one clients can dial: advertise the
  // --listen host then.
  std::string io_host = io_listen.substr(0, io_listen.rfind(':'));
  bool wildcard = io_host.empty() || io_host == "0.0.0.0" || io_host == "[::]" || io_host == "::";
  std::string io_address = ukai::wire::WithPort(wildcard ? f.listen : io_listen, io_server->port());
  if (!f.no_local) RETURN_IF_ERROR(io_server->StartLocal(f.run_dir, io_address));
  return io_address;
}

// Registers the node (its liveness an ephemeral znode), again after every
// session expiry.
absl::Status Register(ukai::meta::MetaStore* meta, ukai::meta::Catalog* catalog,
                      const ukai::pb::NodeInfo& self) {
  ukai::pb::NodeLive live;
  live.set_started_ms(static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())));
  live.set_pid(static_cast<uint64_t>(getpid()));
  auto register_node = [catalog, self, live] { return catalog->RegisterNode(self, live); };
  // A previous incarnation's ephemeral may linger until its session times out.
  absl::Status reg = register_node();
  for (int i = 0; absl::IsAlreadyExists(reg) && i < 150; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    reg = register_node();
  }
  RETURN_IF_ERROR(reg);
  meta->SetSessionListener([register_node] {
    absl::Status s = register_node();
    if (!s.ok()) LOG_WARN("re-registering after session expiry: %s", s.ToString());
  });
  return absl::OkStatus();
}

// The node's background work: jobs, repair scans, scrub, collection.
class Background {
 public:
  Background(const NodeFlags& f, const NodeLimits& l, ukai::meta::Catalog* catalog,
             ukai::control::NodePeers* peers, ukai::Executor* pool, ukai::node::BlockStore* store,
             ukai::node::CopyService* copy)
      : jobs_(ukai::control::JobEnv{f.id, catalog, peers, pool, ukai::SystemClock(), {}, l.jobs}),
        repairs_(f.id, catalog, absl::Seconds(f.repair_interval_s),
                 absl::Seconds(f.rereplicate_after_s), l.repair_cap),
        scrubber_(f.id, catalog, store, absl::Seconds(f.scrub_every_s), l.scrub_cap),
        collector_(copy, store, absl::Seconds(f.collect_every_s)) {}
  void Start() {
    jobs_.Start();  // jobs run on whichever node claims them first
    repairs_.Start();
    scrubber_.Start();
    collector_.Start();
  }
  void Stop() {
    collector_.Stop();
    scrubber_.Stop();
    repairs_.Stop();
    jobs_.Stop();  // a job stops between steps and stays RUNNING for another node
  }

 private:
  ukai::control::JobRunner jobs_;
  ukai::control::RepairScanner repairs_;
  ukai::node::LocalScrubber scrubber_;
  ukai::node::Collector collector_;
};

// Serves until SIGTERM or SIGINT (blocked in `sigs` before any thread starts).
// What the node registers in ZooKeeper about itself.
ukai::pb::NodeInfo SelfRecord(const NodeFlags& f, const NodeLimits& l,
                              const std::string& io_address) {
  ukai::pb::NodeInfo self;
  self.set_id(f.id);
  self.set_site(f.site);
  self.set_address(f.listen);
  self.set_capacity_bytes(l.capacity);
  self.set_io_address(io_address);
  return self;
}

int Serve(const NodeFlags& f, const NodeLimits& l, const sigset_t& sigs) {
  auto security = ukai::security::TransportSecurity::FromFlags("ukai-node", f.tls_dir, f.plaintext,
                                                               ukai::SystemClock());
  if (!security.ok()) return Fail(std::string(security.status().message()));
  if (auto s = CheckIdentity(**security, f.id); !s.ok()) return Fail(std::string(s.message()));
  auto meta_store = ukai::meta::NewZkMetaStore(f.zk, (*security)->zk_auth(), f.zk_session_ms);
  if (!meta_store.ok()) return Fail(std::string(meta_store.status().message()));
  ukai::meta::Catalog catalog(meta_store->get(), f.root);
  if (auto s = catalog.Init(); !s.ok()) return Fail(std::string(s.message()));
  auto pages = OpenPages(f);
  if (!pages.ok()) return Fail(std::string(pages.status().message()));
  ukai::node::BlockStore store(std::move(*pages));
  ukai::node::DiskRegistry disks(&catalog, &store);
  if (auto s = disks.Start(); !s.ok()) return Fail(std::string(s.message()));
  // Block I/O first: its port goes into the record clients read.
  ukai::node::BlockIo block_io(&disks, &store);
  ukai::wire::WireServer io_server(&block_io, 16, (*security)->wire(), l.io);
  auto io_address = StartBlockIo(f, l, &io_server);
  if (!io_address.ok()) return Fail(std::string(io_address.status().message()));
  const ukai::pb::NodeInfo self = SelfRecord(f, l, *io_address);
  ukai::node::NodeOpsService node_ops_service(self, &disks, &store);
  node_ops_service.SetOtherSiteDelay(l.site_delay);
  ukai::wire::WireClientOptions peer_io;  // to other nodes' block I/O
  peer_io.local_dir = f.run_dir;
  peer_io.security = (*security)->wire();
  ukai::control::GrpcNodePeers peers(&catalog, (*security)->Channels(), peer_io);
  // The control plane's fan-outs (node stats, fences, block copies).
  ukai::Executor control_pool("ukai-control", 32, 1024);
  ukai::control::AdminService admin_service(&catalog, &peers, &control_pool,
                                            (*security)->Channels());
  admin_service.set_job_retention(l.jobs);
  ukai::node::CopyService copy_service(f.id, &catalog, &disks, &store, l.copy_cap,
                                       absl::Seconds(30), peer_io);
  grpc::ServerBuilder builder;
  ukai::ConfigureServer(builder, l.rpc);
  int port = 0;
  builder.AddListeningPort(f.listen, (*security)->ServerCredentials(), &port);
  builder.experimental().SetInterceptorCreators(ukai::security::AuditInterceptors());
  builder.RegisterService(&node_ops_service);
  builder.RegisterService(&admin_service);
  builder.RegisterService(&copy_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail("cannot listen on " + f.listen);
  if (auto s = Register(meta_store->get(), &catalog, self); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  Background background(f, l, &catalog, &peers, &control_pool, &store, &copy_service);
  background.Start();
  LOG_INFO("node %s (site %s) serving on %s, block I/O on %s, store %s", f.id, f.site, f.listen,
           *io_address, f.data);
  int sig = 0;
  sigwait(&sigs, &sig);
  LOG_INFO("signal %d: shutting down", sig);
  background.Stop();
  io_server.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  (void)store.Sync();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ukai-node: UKAI storage daemon. Stores replicas of virtual-disk blocks (sparse "
      "extent files with a RocksDB checksum index, or RocksDB alone) and serves the "
      "data and admin gRPC services on one address. Registers itself in ZooKeeper; "
      "SIGTERM stops it cleanly."};
  NodeFlags flags;
  AddServiceFlags(app, &flags);
  AddStoreFlags(app, &flags);
  AddLimitFlags(app, &flags);
  AddBackgroundFlags(app, &flags);
  CLI11_PARSE(app, argc, argv);
  ukai::SetUpDaemon(flags.verbose);
  auto limits = CheckFlags(flags);
  if (!limits.ok()) return Fail(std::string(limits.status().message()));
  // Signals are taken synchronously; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  return Serve(flags, *limits, sigs);
}
