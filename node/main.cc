// ukai-node: the storage daemon. Parses flags and wires the pieces; nothing else.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/log.h"
#include "common/process.h"
#include "common/units.h"
#include "meta/catalog.h"
#include "common/wire_server.h"
#include "common/wire_socket.h"
#include "common/executor.h"
#include "control/admin_service.h"
#include "control/grpc_node_peers.h"
#include "control/job_runner.h"
#include "control/repair_scanner.h"
#include "node/block_io.h"
#include "node/copy_service.h"
#include "node/data_service.h"
#include "node/disk_registry.h"
#include "node/collector.h"
#include "node/local_scrubber.h"

namespace {

int Fail(const std::string& msg) {
  fprintf(stderr, "ukai-node: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ukai-node: UKAI storage daemon. Stores replicas of virtual-disk blocks (sparse "
               "extent files with a RocksDB checksum index, or RocksDB alone) and serves the "
               "data and admin gRPC services on one address. Registers itself in ZooKeeper; "
               "SIGTERM stops it cleanly."};
  std::string id, site, listen, io_listen, zk = "127.0.0.1:2181", root = "/ukai", data, capacity = "0";
  int zk_session_ms = 10000;
  std::string store_kind = "extent", copy_bandwidth = "0", repair_bandwidth = "0",
              scrub_bandwidth = "20M";
  bool no_blob = false, verbose = false, no_local = false;
  int test_site_delay_ms = 0;
  int repair_interval_s = 10;
  int rereplicate_after_s = 600;
  int scrub_every_s = 7 * 86400;
  int collect_every_s = 3600;
  app.add_option("--id", id, "node id, unique in the cluster ([A-Za-z0-9._-])")->required();
  app.add_option("--site", site, "site (datacenter) label")->required();
  app.add_option("--listen", listen, "host:port for the data and admin services")->required();
  app.add_option("--io-listen", io_listen,
                 "host:port for block reads and writes (UKAI's block I/O transport); default: "
                 "the --listen host, a free port. Published in ZooKeeper, so clients find it");
  app.add_flag("--no-local-io", no_local,
               "do not also serve block I/O on a same-host socket (an abstract Unix socket "
               "named after the block I/O address; frontends on this host use it instead of "
               "TCP, which costs less CPU per request)");
  app.add_option("--data", data, "directory of the node's store (created if missing)")->required();
  app.add_option("--zk", zk, "ZooKeeper ensemble host:port[,host:port...]")->capture_default_str();
  app.add_option("--zk-root", root, "root znode of this cluster")->capture_default_str();
  app.add_option("--capacity", capacity, "advertised capacity, e.g. 100G (0: unknown)")
      ->capture_default_str();
  app.add_option("--zk-session-ms", zk_session_ms, "ZooKeeper session timeout: how long a dead node stays listed as up")
      ->capture_default_str();
  app.add_option("--store", store_kind,
                 "page store: 'extent' (data in sparse files, RocksDB indexes checksums) or "
                 "'rocksdb' (data in RocksDB blob files)")
      ->check(CLI::IsMember({"extent", "rocksdb"}))
      ->capture_default_str();
  app.add_option("--copy-bandwidth", copy_bandwidth,
                 "cap on all background copies into this node together, bytes/s (e.g. 200M; "
                 "0: none). Jobs can set a lower limit of their own (ukaictl relocate --bandwidth)")
      ->capture_default_str();
  app.add_flag("--no-blob-files", no_blob, "with --store rocksdb: keep page data in the LSM tree");
  app.add_option("--repair-interval", repair_interval_s,
                 "seconds between looks for disks with work for a repair: a stale replica on "
                 "a live node (it missed writes while down) or a replica on a node drained or "
                 "down past --rereplicate-after; each finding starts a repair job. 0: never")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  app.add_option("--repair-bandwidth", repair_bandwidth,
                 "copy rate limit of each repair this node's scan starts, bytes/s (e.g. 100M; "
                 "0: none). For links or disks a copy would fill; on one machine a 100M cap "
                 "doubled recovery time and cut guests' p99 rise only from 9-15x to 7-10x "
                 "(bench/RECOVERY-100M.md). `ukaictl disk repair` sets its own")
      ->capture_default_str();
  app.add_option("--rereplicate-after", rereplicate_after_s,
                 "seconds a node may stay down before its replicas are rebuilt on other nodes "
                 "(same site first; another site only if the disk's policy allows it)")
      ->capture_default_str()
      ->check(CLI::Range(0, 30 * 86400));
  app.add_option("--scrub-every", scrub_every_s,
                 "seconds between this node's slow checks of every page it stores against its "
                 "checksum (the first one this long after start); a replica with a bad page is "
                 "marked stale and repaired, unless it is the block's last clean one. 0: never")
      ->capture_default_str()
      ->check(CLI::Range(0, 365 * 86400));
  app.add_option("--collect-every", collect_every_s,
                 "seconds between this node's passes that drop stored objects nobody names any "
                 "more (a deleted snapshot's, missed while the node was down; an abandoned "
                 "copy-on-write). 0: never")
      ->capture_default_str()
      ->check(CLI::Range(0, 365 * 86400));
  app.add_option("--scrub-bandwidth", scrub_bandwidth,
                 "read rate of that check, bytes/s (0: none)")
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "debug logging");
  app.add_option("--test-site-delay-ms", test_site_delay_ms,
                 "TESTS ONLY, refused unless UKAI_TEST_HOOKS=1 is in the environment: answer "
                 "block I/O and pings from frontends of other sites this many ms late, to make "
                 "sites far apart on one machine (docs/TESTING.md)");
  CLI11_PARSE(app, argc, argv);
  ukai::SetUpDaemon(verbose);
  if (!ukai::ValidateDiskName(id).ok()) return Fail("invalid --id '" + id + "'");
  auto cap = ukai::ParseSize(capacity);
  if (!cap.ok()) return Fail(std::string(cap.status().message()));
  if (test_site_delay_ms != 0) {
    const char* hooks = getenv("UKAI_TEST_HOOKS");
    if (hooks == nullptr || std::string(hooks) != "1") {
      return Fail("--test-site-delay-ms is for tests only; it needs UKAI_TEST_HOOKS=1");
    }
    if (test_site_delay_ms < 0 || test_site_delay_ms > 10000) {
      return Fail("--test-site-delay-ms must be between 0 and 10000");
    }
  }
  auto copy_cap = ukai::ParseSize(copy_bandwidth);
  if (!copy_cap.ok()) return Fail("--copy-bandwidth: " + std::string(copy_cap.status().message()));
  auto scrub_cap = ukai::ParseSize(scrub_bandwidth);
  if (!scrub_cap.ok()) return Fail("--scrub-bandwidth: " + std::string(scrub_cap.status().message()));
  auto repair_cap = ukai::ParseSize(repair_bandwidth);
  if (!repair_cap.ok()) {
    return Fail("--repair-bandwidth: " + std::string(repair_cap.status().message()));
  }

  // Signals are taken synchronously below; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  auto meta_store = ukai::meta::NewZkMetaStore(zk, zk_session_ms);
  if (!meta_store.ok()) return Fail(std::string(meta_store.status().message()));
  ukai::meta::Catalog catalog(meta_store->get(), root);
  if (auto s = catalog.Init(); !s.ok()) return Fail(std::string(s.message()));

  ukai::node::RocksDbOptions ro;
  ro.blob_files = !no_blob;
  auto pages = store_kind == "extent" ? ukai::node::NewExtentPageStore(data)
                                      : ukai::node::NewRocksDbPageStore(data, ro);
  if (!pages.ok()) return Fail(std::string(pages.status().message()));
  ukai::node::BlockStore store(std::move(*pages));
  ukai::node::DiskRegistry disks(&catalog, &store);
  if (auto s = disks.Start(); !s.ok()) return Fail(std::string(s.message()));

  // Block I/O first: its port goes into the record clients read.
  ukai::node::BlockIo block_io(&disks, &store);
  ukai::wire::WireServer io_server(&block_io);
  if (io_listen.empty()) io_listen = ukai::wire::WithPort(listen, 0);
  const absl::Duration site_delay = absl::Milliseconds(test_site_delay_ms);
  if (site_delay > absl::ZeroDuration()) {
    LOG_WARN("TEST HOOK: answering frontends of sites other than %s %d ms late", site,
             test_site_delay_ms);
    io_server.SetReplyDelay([site, site_delay](const std::string& peer) {
      return !peer.empty() && peer != site ? site_delay : absl::ZeroDuration();
    });
  }
  if (auto s = io_server.Start(io_listen); !s.ok()) return Fail(std::string(s.message()));
  // A wildcard listen address is not one clients can dial: advertise the
  // --listen host then.
  std::string io_host = io_listen.substr(0, io_listen.rfind(':'));
  bool wildcard = io_host.empty() || io_host == "0.0.0.0" || io_host == "[::]" || io_host == "::";
  std::string io_address =
      ukai::wire::WithPort(wildcard ? listen : io_listen, io_server.port());
  if (!no_local) {
    if (auto s = io_server.StartLocal(io_address); !s.ok()) return Fail(std::string(s.message()));
  }

  ukai::pb::NodeInfo self;
  self.set_id(id);
  self.set_site(site);
  self.set_address(listen);
  self.set_capacity_bytes(*cap);
  self.set_io_address(io_address);
  ukai::node::DataService data_service(self, &disks, &store);
  data_service.SetOtherSiteDelay(site_delay);
  ukai::control::GrpcNodePeers peers(&catalog);
  // The control plane's fan-outs (node stats, fences, block copies).
  ukai::Executor control_pool("ukai-control", 32, 1024);
  ukai::control::AdminService admin_service(&catalog, &peers, &control_pool);
  ukai::node::CopyService copy_service(id, &catalog, &disks, &store, *copy_cap);
  grpc::ServerBuilder builder;
  ukai::ConfigureServer(builder);
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&data_service);
  builder.RegisterService(&admin_service);
  builder.RegisterService(&copy_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail("cannot listen on " + listen);

  ukai::pb::NodeLive live;
  live.set_started_ms(static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())));
  live.set_pid(static_cast<uint64_t>(getpid()));
  auto register_node = [&] { return catalog.RegisterNode(self, live); };
  // A previous incarnation's ephemeral may linger until its session times out.
  absl::Status reg = register_node();
  for (int i = 0; absl::IsAlreadyExists(reg) && i < 150; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    reg = register_node();
  }
  if (!reg.ok()) return Fail(std::string(reg.message()));
  (*meta_store)->SetSessionListener([&] {
    absl::Status s = register_node();
    if (!s.ok()) LOG_WARN("re-registering after session expiry: %s", s.ToString());
  });
  // Jobs (relocation) run on whichever node claims them first.
  ukai::control::JobEnv job_env;
  job_env.self = id;
  job_env.catalog = &catalog;
  job_env.peers = &peers;
  job_env.executor = &control_pool;
  ukai::control::JobRunner jobs(job_env);
  jobs.Start();
  ukai::control::RepairScanner repairs(id, &catalog, absl::Seconds(repair_interval_s),
                                    absl::Seconds(rereplicate_after_s), *repair_cap);
  repairs.Start();
  ukai::node::LocalScrubber scrubber(id, &catalog, &store, absl::Seconds(scrub_every_s), *scrub_cap);
  scrubber.Start();
  ukai::node::Collector collector(&copy_service, &store, absl::Seconds(collect_every_s));
  collector.Start();
  LOG_INFO("node %s (site %s) serving on %s, block I/O on %s, store %s", id, site, listen,
           io_address, data);

  int sig = 0;
  sigwait(&sigs, &sig);
  LOG_INFO("signal %d: shutting down", sig);
  collector.Stop();
  scrubber.Stop();
  repairs.Stop();
  jobs.Stop();  // a job stops between steps and stays RUNNING for another node
  io_server.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  (void)store.Sync();
  return 0;
}
