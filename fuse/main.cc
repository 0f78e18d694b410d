// ukai-fuse: the hypervisor frontend. Mounts a directory in which every disk
// of the cluster is a raw image file. Parses flags and wires objects only.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "common/process.h"
#include "fuse/ukai_fs.h"

int main(int argc, char** argv) {
  CLI::App app{
      "ukai-fuse: show every UKAI disk as a raw image file under MOUNTPOINT.\n"
      "Use a disk with e.g. qemu-system-x86_64 -drive "
      "file=MOUNTPOINT/NAME,format=raw,cache=none,aio=native"};
  std::string mountpoint, zk = "127.0.0.1:2181", root = "/ukai", site, host, tls_dir,
                          run_dir = "/run/ukai";
  int threads = 32, rpc_timeout_ms = 5000, zk_session_ms = 10000;
  bool allow_other = false, verbose = false, plaintext = false;
  app.add_option("mountpoint", mountpoint, "directory to mount on")->required();
  app.add_option("--zk", zk, "ZooKeeper ensemble host:port[,host:port...]")->capture_default_str();
  app.add_option("--zk-root", root, "root znode of the cluster")->capture_default_str();
  app.add_option("--site", site, "site of this hypervisor (reads prefer replicas there)")
      ->required();
  app.add_option("--host", host, "unique name of this frontend (default hostname-pid)");
  app.add_option("--threads", threads, "maximum FUSE worker threads")->capture_default_str();
  app.add_option("--rpc-timeout-ms", rpc_timeout_ms, "deadline of one data RPC")
      ->capture_default_str();
  app.add_option("--zk-session-ms", zk_session_ms,
                 "ZooKeeper session timeout: how long this host's open records outlive a crash")
      ->capture_default_str();
  app.add_option("--tls-dir", tls_dir,
                 "this host's TLS credentials: ca.pem, cert.pem and key.pem (0600) of a frontend "
                 "certificate (`ukaictl cert issue --role frontend --id HOST`), and crl.pem when "
                 "there is one (docs/SECURITY.md)");
  app.add_flag("--insecure-plaintext", plaintext,
               "no TLS: for benchmarks on a closed network only; logged as a warning");
  app.add_option("--run-dir", run_dir,
                 "where this host's nodes keep their same-host sockets (their --run-dir): a node "
                 "on this host is reached through its socket there instead of TCP")
      ->capture_default_str();
  app.add_flag("--allow-other", allow_other, "let other users open the disks (e.g. qemu user)");
  app.add_flag("-v,--verbose", verbose, "debug logging");
  CLI11_PARSE(app, argc, argv);
  ukai::SetUpDaemon(verbose);

  ukai::client::ClusterOptions opts;
  opts.zk = zk;
  opts.root = root;
  opts.site = site;
  opts.host = host;
  opts.rpc_timeout_ms = rpc_timeout_ms;
  opts.zk_session_ms = zk_session_ms;
  opts.tls_dir = tls_dir;
  opts.insecure_plaintext = plaintext;
  opts.run_dir = run_dir;
  opts.program = "ukai-fuse";
  auto cluster = ukai::client::Cluster::Connect(opts);
  if (!cluster.ok()) {
    fprintf(stderr, "ukai-fuse: %s\n", std::string(cluster.status().message()).c_str());
    return 1;
  }

  ukai::fuse::UkaiFs fs(cluster->get(), ukai::fuse::FsOptions{});
  std::vector<std::string> fargs = {"ukai-fuse", "-o", "fsname=ukai,subtype=ukai"};
  if (allow_other) {
    fargs.push_back("-o");
    fargs.push_back("allow_other");
  }
  std::vector<char*> cargs;
  for (auto& a : fargs) cargs.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(cargs.size()), cargs.data());
  fuse_session* se =
      fuse_session_new(&args, ukai::fuse::UkaiFs::Ops(), sizeof(fuse_lowlevel_ops), &fs);
  if (se == nullptr) {
    fprintf(stderr, "ukai-fuse: cannot create the FUSE session\n");
    return 1;
  }
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, mountpoint.c_str()) != 0) {
    fprintf(stderr, "ukai-fuse: cannot mount on %s\n", mountpoint.c_str());
    fuse_session_destroy(se);
    return 1;
  }
  fs.Attach(se);
  LOG_INFO("mounted on %s (site %s, host %s)", mountpoint, site, (*cluster)->options().host);

  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 1);
  fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(threads));
  fuse_loop_cfg_set_idle_threads(cfg, static_cast<unsigned>(std::max(4, threads / 2)));
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  LOG_INFO("unmounting %s", mountpoint);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  return rc == 0 ? 0 : 1;
}
