// ukai-fuse: the hypervisor frontend. Mounts a directory in which every disk
// of the cluster is a raw image file. Parses flags and wires objects only.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "common/process.h"
#include "common/status.h"
#include "fuse/ukai_fs.h"
#include "security/files.h"

namespace {

struct Flags {
  ukai::client::ClusterOptions cluster;
  std::string mountpoint;
  std::string state_dir = "/var/lib/ukai/fuse";
  int threads = 32;
  bool verbose = false;
  bool allow_other = false;  // accepted for old unit files; always on as root now
};

void AddFlags(CLI::App& app, Flags& f) {
  ukai::client::ClusterOptions& c = f.cluster;
  c.zk = "127.0.0.1:2181";
  c.root = "/ukai";
  c.run_dir = "/run/ukai";
  app.add_option("mountpoint", f.mountpoint, "directory to mount on")->required();
  app.add_option("--zk", c.zk, "ZooKeeper ensemble host:port[,host:port...]")
      ->capture_default_str();
  app.add_option("--zk-root", c.root, "root znode of the cluster")->capture_default_str();
  app.add_option("--site", c.site, "site of this hypervisor (reads prefer replicas there)")
      ->required();
  app.add_option("--host", c.host, "unique name of this frontend (default hostname-pid)");
  app.add_option("--threads", f.threads, "maximum FUSE worker threads")->capture_default_str();
  app.add_option("--rpc-timeout-ms", c.rpc_timeout_ms, "deadline of one data RPC")
      ->capture_default_str();
  app.add_option("--zk-session-ms", c.zk_session_ms,
                 "ZooKeeper session timeout: how long this host's open records outlive a crash")
      ->capture_default_str();
  app.add_option("--tls-dir", c.tls_dir,
                 "this host's TLS credentials: ca.pem, cert.pem and key.pem (0600) of a frontend "
                 "certificate (`ukaictl cert issue --role frontend --id HOST`), and crl.pem when "
                 "there is one (docs/SECURITY.md)");
  app.add_flag("--insecure-plaintext", c.insecure_plaintext,
               "no TLS: for benchmarks on a closed network only; logged as a warning");
  app.add_option("--run-dir", c.run_dir,
                 "where this host's nodes keep their same-host sockets (their --run-dir): a node "
                 "on this host is reached through its socket there instead of TCP")
      ->capture_default_str();
  app.add_option("--state-dir", f.state_dir,
                 "this mount's own directory (0700): the owner and mode of each disk file "
                 "(chown/chmod, e.g. by libvirt) are kept there across remounts, in `access`")
      ->capture_default_str();
  app.add_flag("--allow-other", f.allow_other,
               "no effect: other users always may, as far as "
               "each file's owner and mode allow")
      ->group("");
  app.add_flag("-v,--verbose", f.verbose, "debug logging");
}

// The private table of owners and modes for this mount.
absl::StatusOr<std::unique_ptr<ukai::fuse::FileAccess>> OpenAccess(const Flags& f) {
  RETURN_IF_ERROR(ukai::security::MakePrivateDir(f.state_dir));
  // Files nobody chowned belong to the mounting user and only it may open them.
  return ukai::fuse::FileAccess::Open(f.state_dir + "/access",
                                      ukai::fuse::Access{getuid(), getgid(), 0600});
}

// Mounts `fs` and serves the kernel until unmounted or signalled.
int Serve(ukai::fuse::UkaiFs& fs, const Flags& f) {
  // The kernel checks each file's owner and mode (default_permissions); as
  // root, other users (QEMU's) may then open what they are given.
  std::vector<std::string> fargs = {"ukai-fuse", "-o",
                                    "fsname=ukai,subtype=ukai,default_permissions"};
  if (geteuid() == 0) {
    fargs.insert(fargs.end(), {"-o", "allow_other"});
  } else {
    LOG_WARN("not root: only this user can open the disks");
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
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, f.mountpoint.c_str()) != 0) {
    fprintf(stderr, "ukai-fuse: cannot mount on %s\n", f.mountpoint.c_str());
    fuse_session_destroy(se);
    return 1;
  }
  fs.Attach(se);
  LOG_INFO("mounted on %s (site %s, host %s)", f.mountpoint, f.cluster.site, f.cluster.host);
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 1);
  fuse_loop_cfg_set_max_threads(cfg, static_cast<unsigned>(f.threads));
  fuse_loop_cfg_set_idle_threads(cfg, static_cast<unsigned>(std::max(4, f.threads / 2)));
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  LOG_INFO("unmounting %s", f.mountpoint);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  return rc == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ukai-fuse: show every UKAI disk as a raw image file under MOUNTPOINT.\n"
      "Use a disk with e.g. qemu-system-x86_64 -drive "
      "file=MOUNTPOINT/NAME,format=raw,cache=none,aio=native"};
  Flags f;
  AddFlags(app, f);
  CLI11_PARSE(app, argc, argv);
  ukai::SetUpDaemon(f.verbose);

  auto access = OpenAccess(f);
  if (!access.ok()) {
    fprintf(stderr, "ukai-fuse: %s\n", std::string(access.status().message()).c_str());
    return 1;
  }
  f.cluster.program = "ukai-fuse";
  auto cluster = ukai::client::Cluster::Connect(f.cluster);
  if (!cluster.ok()) {
    fprintf(stderr, "ukai-fuse: %s\n", std::string(cluster.status().message()).c_str());
    return 1;
  }
  f.cluster.host = (*cluster)->options().host;
  ukai::fuse::UkaiFs fs(cluster->get(), access->get(), ukai::fuse::FsOptions{});
  return Serve(fs, f);
}
