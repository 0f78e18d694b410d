// The block I/O transport on loopback: pipelined round trips, error codes,
// slow methods, deadlines, a server that goes away and comes back, malformed
// frames, and the same-host socket.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/process.h"
#include "common/status.h"
#include "common/wire_client.h"
#include "common/wire_format.h"
#include "common/wire_server.h"
#include "common/wire_socket.h"
#include "common/wire_testing.h"
#include "gtest/gtest.h"

namespace ukai::wire {
namespace {

constexpr uint16_t kEcho = 1, kFail = 2, kSlow = 3, kBlock = 5, kBackground = 6,
                   kFile = 7;  // 4 is kHello

// Echo: the reply's data is meta + data. kFail answers NOT_FOUND with the
// meta as message. kSlow and kBlock wait for `release`.
class TestHandler : public WireHandler {
 public:
  absl::Status Handle(const WirePeer&, uint16_t method, absl::string_view meta,
                      absl::string_view data, std::string* reply, bool may_block) override {
    if (method == kFail) return absl::NotFoundError(meta);
    if (method == kBlock && !may_block) return ukai::WouldBlock();  // to a worker
    if (method == kBlock) ++blocked_on_workers;
    if (method == kBackground) {
      background_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
      ++blocked_in_background;
    }
    if (method == kSlow || method == kBlock || method == kBackground) release.WaitForNotification();
    reply->append(meta.data(), meta.size());
    reply->append(data.data(), data.size());
    return absl::OkStatus();
  }
  bool Slow(uint16_t method) const override { return method == kSlow; }
  bool Background(uint16_t method) const override { return method == kBackground; }
  // kFile: 4 KiB of `file_fd` at the offset in meta, left to the server's
  // ring; answered "ring:" + the bytes.
  class FileRead : public Deferred {
   public:
    explicit FileRead(TestHandler* h) : h_(h) {}
    absl::Status Finish(std::string* reply) override {
      ++h_->finished_on_ring;
      if (ranges[0].error != 0) return absl::InternalError("read failed");
      *reply = "ring:" + buf.substr(0, ranges[0].done);
      return absl::OkStatus();
    }
    std::string buf = std::string(4096, '\0');

   private:
    TestHandler* h_;
  };
  absl::Status HandleNoWait(const WirePeer& peer, uint16_t method, absl::string_view meta,
                            absl::string_view data, std::string* reply,
                            std::unique_ptr<Deferred>* deferred) override {
    if (method != kFile) return Handle(peer, method, meta, data, reply, false);
    if (deferred == nullptr) return absl::FailedPreconditionError("no ring");
    auto d = std::make_unique<FileRead>(this);
    d->ranges.push_back({file_fd, std::stoull(std::string(meta)), d->buf.data(), 4096});
    *deferred = std::move(d);
    return ukai::WouldBlock();
  }
  int file_fd = -1;
  std::atomic<int> finished_on_ring{0};
  absl::Notification release;
  std::atomic<int> blocked_on_workers{0}, blocked_in_background{0};
  std::atomic<int> background_nice{-100};
};

struct Rig {
  TestHandler handler;
  std::unique_ptr<WireServer> server;
  int port = 0;
  void Start(int want_port = 0) {
    server = std::make_unique<WireServer>(&handler);
    ASSERT_TRUE(server->Start("127.0.0.1:" + std::to_string(want_port)).ok());
    port = server->port();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

absl::Time In(int ms) { return absl::Now() + absl::Milliseconds(ms); }

TEST(Wire, PipelinedRoundTripsFromManyThreads) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string payload(1 + (i * 977 + t) % 70000, static_cast<char>('a' + t));
        std::string meta = "m" + std::to_string(t) + ":" + std::to_string(i);
        Reply r = CallAndWait(client, kEcho, meta, payload);
        if (r.status.ok() && r.data == meta + payload) ++good;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good, 8 * 200);
}

TEST(Wire, ErrorsKeepTheirCodeAndMessage) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  Reply r = CallAndWait(client, kFail, "disk 7: no such disk");
  EXPECT_TRUE(absl::IsNotFound(r.status)) << r.status;
  EXPECT_EQ(r.status.message(), "disk 7: no such disk");
}

TEST(Wire, SlowMethodDoesNotHoldUpTheConnection) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  char out1[16], out2[16];
  WireCall slow, fast;
  slow.method = kSlow;
  slow.meta = "slow";
  slow.out = out1;
  slow.out_cap = sizeof(out1);
  fast.method = kEcho;
  fast.meta = "fast";
  fast.out = out2;
  fast.out_cap = sizeof(out2);
  WireWaiter ws, wf;
  client.Start(&slow, &ws);
  client.Start(&fast, &wf);
  wf.WaitAll(In(5000));
  EXPECT_TRUE(fast.status.ok()) << fast.status;
  rig.handler.release.Notify();
  ws.WaitAll(In(5000));
  EXPECT_TRUE(slow.status.ok()) << slow.status;
  EXPECT_EQ(std::string(out1, slow.out_len), "slow");
}

TEST(Wire, RequestsThatWouldBlockRunOnWorkersSideBySide) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  std::deque<WireCall> blocked(8);
  WireWaiter wb;
  for (auto& c : blocked) {
    c.method = kBlock;
    client.Start(&c, &wb);
  }
  Reply echo = CallAndWait(client, kEcho, "free");
  EXPECT_TRUE(echo.status.ok()) << echo.status;  // not behind the blocked ones
  for (int i = 0; i < 100 && rig.handler.blocked_on_workers < 8; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(rig.handler.blocked_on_workers, 8);  // all waiting at once, each on a worker
  rig.handler.release.Notify();
  wb.WaitAll(In(5000));
  for (auto& c : blocked) EXPECT_TRUE(c.status.ok()) << c.status;
}

// A request that leaves file reads to the server is answered from its ring
// with what the handler made of them, many at once, and never takes a worker.
TEST(Wire, DeferredFileReadsAreAnsweredFromTheRing) {
  if (!IoRing::Start().ok()) GTEST_SKIP() << "no io_uring here: the server uses workers";
  Rig rig;
  char path[] = "/tmp/ukai-wire-ring-XXXXXX";
  rig.handler.file_fd = mkstemp(path);
  ASSERT_GE(rig.handler.file_fd, 0);
  unlink(path);
  std::string content;
  for (int p = 0; p < 16; ++p) content += std::string(4096, static_cast<char>('A' + p));
  ASSERT_EQ(pwrite(rig.handler.file_fd, content.data(), content.size(), 0), 65536);
  rig.Start();
  WireClient client(rig.address());
  std::deque<WireCall> calls(32);
  std::deque<std::string> outs;
  WireWaiter w;
  for (size_t i = 0; i < calls.size(); ++i) {
    outs.emplace_back(4200, '\0');
    calls[i].method = kFile;
    calls[i].meta = std::to_string((i % 16) * 4096);
    calls[i].out = outs.back().data();
    calls[i].out_cap = outs.back().size();
    client.Start(&calls[i], &w);
  }
  w.WaitAll(In(5000));
  for (size_t i = 0; i < calls.size(); ++i) {
    ASSERT_TRUE(calls[i].status.ok()) << calls[i].status;
    EXPECT_EQ(outs[i].substr(0, calls[i].out_len), "ring:" + content.substr((i % 16) * 4096, 4096));
  }
  EXPECT_EQ(rig.handler.finished_on_ring, 32);
  EXPECT_EQ(rig.handler.blocked_on_workers, 0);
  // Past the end of the file: the handler sees what was read (nothing).
  Reply eof = CallAndWait(client, kFile, "65536");
  ASSERT_TRUE(eof.status.ok()) << eof.status;
  EXPECT_EQ(eof.data, "ring:");
  rig.server->Shutdown();
  close(rig.handler.file_fd);
}

// Background requests (a copy's pulls) run on their own low-priority
// workers: however many are stuck, foreground requests that must wait for a
// worker still get one.
TEST(Wire, BackgroundRequestsNeverTakeForegroundWorkers) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  std::deque<WireCall> background(20);  // more than all the foreground workers
  WireWaiter wb;
  for (auto& c : background) {
    c.method = kBackground;
    client.Start(&c, &wb);
  }
  std::deque<WireCall> blocked(4);
  WireWaiter wf;
  for (auto& c : blocked) {
    c.method = kBlock;
    client.Start(&c, &wf);
  }
  for (int i = 0; i < 100 && rig.handler.blocked_on_workers < 4; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(rig.handler.blocked_on_workers, 4);
  EXPECT_LE(rig.handler.blocked_in_background, 2);  // the background pool's size
  EXPECT_EQ(rig.handler.background_nice, kBackgroundNice);
  rig.handler.release.Notify();
  wf.WaitAll(In(5000));
  wb.WaitAll(In(5000));
  for (auto& c : blocked) EXPECT_TRUE(c.status.ok()) << c.status;
  for (auto& c : background) EXPECT_TRUE(c.status.ok()) << c.status;
  EXPECT_EQ(rig.handler.blocked_in_background, 20);
}

TEST(Wire, DeadlineCancelsAndTheClientStaysUsable) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  WireCall stuck;
  stuck.method = kBlock;
  WireWaiter w;
  absl::Time start = absl::Now();
  client.Start(&stuck, &w);
  w.WaitAll(In(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(stuck.status)) << stuck.status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  rig.handler.release.Notify();  // its late reply is dropped
  Reply next = CallAndWait(client, kEcho, "ok");
  EXPECT_TRUE(next.status.ok()) << next.status;
  EXPECT_EQ(next.data, "ok");
}

TEST(Wire, ServerGoneFailsCallsThenReconnects) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  WireCall stuck;
  stuck.method = kBlock;
  WireWaiter w;
  client.Start(&stuck, &w);
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(100));
    rig.handler.release.Notify();  // lets the server's thread end
    rig.server->Shutdown();
  });
  w.WaitAll(In(5000));
  stopper.join();
  // Either the reply made it out before the close, or the call failed as
  // UNAVAILABLE; never a hang or another code.
  EXPECT_TRUE(stuck.status.ok() || absl::IsUnavailable(stuck.status)) << stuck.status;

  Reply refused = CallAndWait(client, kEcho, "");
  EXPECT_TRUE(absl::IsUnavailable(refused.status)) << refused.status;
  EXPECT_NE(refused.status.message().find(rig.address()), std::string::npos);

  Rig again;
  again.Start(rig.port);
  Reply back = CallAndWait(client, kEcho, "back");
  EXPECT_TRUE(back.status.ok()) << back.status;
}

TEST(Wire, ReplyLargerThanTheBufferIsAnErrorNotAnOverflow) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  char out[4] = {'x', 'x', 'x', 'x'};
  WireCall call;
  call.method = kEcho;
  call.meta = "too long";
  call.out = out;
  call.out_cap = 2;
  WireWaiter w;
  client.Start(&call, &w);
  w.WaitAll(In(5000));
  EXPECT_TRUE(absl::IsInternal(call.status)) << call.status;
  EXPECT_EQ(std::string(out, 4), "xxxx");
}

TEST(Wire, MalformedFrameClosesOnlyThatConnection) {
  Rig rig;
  rig.Start();
  auto fd = ConnectTcp(rig.address(), absl::Seconds(1), absl::Seconds(1));
  ASSERT_TRUE(fd.ok());
  char junk[kHeaderBytes];
  memset(junk, 0x5a, sizeof(junk));
  ASSERT_EQ(write(*fd, junk, sizeof(junk)), static_cast<ssize_t>(sizeof(junk)));
  char c;
  EXPECT_EQ(read(*fd, &c, 1), 0);  // closed by the server
  close(*fd);
  WireClient client(rig.address());
  Reply r = CallAndWait(client, kEcho, "fine");
  EXPECT_TRUE(r.status.ok()) << r.status;
}

// Calls without a waiter: completion through on_done, on time or not.
TEST(Wire, CallbackCallsCompleteOnceWithReplyOrDeadline) {
  Rig rig;
  rig.Start();
  WireClient client(rig.address());
  absl::Notification got_reply, got_deadline;
  char out[8];
  WireCall ok;
  ok.method = kEcho;
  ok.meta = "cb";
  ok.out = out;
  ok.out_cap = sizeof(out);
  ok.deadline = In(5000);
  ok.on_done = [&] { got_reply.Notify(); };
  client.Start(&ok, nullptr);
  ASSERT_TRUE(got_reply.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(std::string(out, ok.out_len), "cb");

  WireCall stuck;
  stuck.method = kBlock;
  stuck.deadline = In(100);
  stuck.on_done = [&] { got_deadline.Notify(); };
  absl::Time start = absl::Now();
  client.Start(&stuck, nullptr);
  ASSERT_TRUE(got_deadline.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(absl::IsDeadlineExceeded(stuck.status)) << stuck.status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  rig.handler.release.Notify();
}

TEST(Wire, CallbackCallToANodeThatIsNotThereFailsAtOnce) {
  Rig rig;
  rig.Start();
  std::string address = rig.address();
  rig.server->Shutdown();
  WireClient client(address);
  bool called = false;
  WireCall call;
  call.method = kEcho;
  call.on_done = [&] { called = true; };
  client.Start(&call, nullptr);
  EXPECT_TRUE(called);  // in Start, before it returned
  EXPECT_TRUE(absl::IsUnavailable(call.status)) << call.status;
}

TEST(Wire, HeaderRoundTripsAndRejectsOversizedLengths) {
  Header h;
  h.method = kWrite;
  h.status = 5;
  h.tag = 0x0102030405060708ull;
  h.meta_len = 17;
  h.data_len = 4096;
  char buf[kHeaderBytes];
  EncodeHeader(h, buf);
  Header back;
  ASSERT_TRUE(DecodeHeader(buf, &back));
  EXPECT_EQ(back.tag, h.tag);
  EXPECT_EQ(back.data_len, 4096u);
  h.data_len = kMaxDataBytes + 1;
  EncodeHeader(h, buf);
  EXPECT_FALSE(DecodeHeader(buf, &back));
}

// A private run directory for same-host sockets, removed at the end.
struct RunDir {
  std::string path;
  RunDir() {
    char tmpl[] = "/tmp/ukai-wire-XXXXXX";
    path = mkdtemp(tmpl);
    path += "/run";
  }
  ~RunDir() {
    rmdir(path.c_str());
    rmdir(path.substr(0, path.rfind('/')).c_str());
  }
};

TEST(Wire, SameHostClientsUseTheLocalSocketAndOthersTcp) {
  RunDir run;
  Rig rig;
  rig.Start();
  ASSERT_TRUE(rig.server->StartLocal(run.path, rig.address()).ok());
  struct stat st;
  ASSERT_EQ(stat(run.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(LocalSocketPath(run.path, rig.address()).c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  WireClientOptions local_opts;
  local_opts.local_dir = run.path;
  WireClient local(rig.address(), local_opts);
  EXPECT_EQ(CallAndWait(local, kEcho, "m", "d").data, "md");
  EXPECT_TRUE(local.local());

  WireClient tcp(rig.address());
  EXPECT_EQ(CallAndWait(tcp, kEcho, "m", "d").data, "md");
  EXPECT_FALSE(tcp.local());

  // A server without the local socket: the client falls back to TCP.
  Rig plain;
  plain.Start();
  WireClient fallback(plain.address(), local_opts);
  EXPECT_EQ(CallAndWait(fallback, kEcho, "x").data, "x");
  EXPECT_FALSE(fallback.local());

  // Once the server is gone, so is its socket file.
  rig.server->Shutdown();
  EXPECT_NE(stat(LocalSocketPath(run.path, rig.address()).c_str(), &st), 0);
}

// Runs `fn` in a child process as user "nobody"; its exit status.
template <typename Fn>
int RunAsNobody(Fn fn) {
  pid_t child = fork();
  if (child == 0) _exit(setuid(65534) == 0 ? fn() : 3);
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int BindUnix(const std::string& path) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  if (bind(s, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) != 0 || listen(s, 1) != 0) {
    return -1;
  }
  return s;
}

// Connects to a Unix socket and reads: 0 on end of stream (closed by the
// peer), 1 on data, -1 when it cannot connect.
int ConnectAndReadOne(const std::string& path) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  if (connect(s, reinterpret_cast<struct sockaddr*>(&sa), sizeof(sa)) != 0) return -1;
  char b;
  return read(s, &b, 1) == 0 ? 0 : 1;
}

TEST(Wire, TheLocalSocketRefusesAnotherUsersPeerAndDirectory) {
  RunDir run;
  Rig rig;
  rig.Start();
  ASSERT_TRUE(rig.server->StartLocal(run.path, rig.address()).ok());
  const std::string path = LocalSocketPath(run.path, rig.address());
  if (geteuid() == 0) {
    // A process of another user ("nobody") that reaches the socket is
    // closed by the node unanswered.
    const std::string parent = run.path.substr(0, run.path.rfind('/'));
    ASSERT_EQ(chmod(parent.c_str(), 0755), 0);  // let it reach the socket (test only)
    ASSERT_EQ(chmod(run.path.c_str(), 0755), 0);
    ASSERT_EQ(chmod(path.c_str(), 0666), 0);
    EXPECT_EQ(RunAsNobody([&] { return ConnectAndReadOne(path) == 0 ? 0 : 1; }), 0);
    // A socket "nobody" made where a node's would be is refused by a client.
    const std::string squat_dir = run.path + "-squat";
    ASSERT_EQ(mkdir(squat_dir.c_str(), 0777), 0);
    ASSERT_EQ(chmod(squat_dir.c_str(), 0777), 0);
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    pid_t squatter = fork();
    if (squatter == 0) {
      if (setuid(65534) != 0) _exit(3);
      int l = BindUnix(LocalSocketPath(squat_dir, "10.0.0.1:7701"));
      (void)!write(ready[1], "x", 1);
      _exit(l >= 0 && accept(l, nullptr, nullptr) >= 0 ? 0 : 4);
    }
    char b;
    ASSERT_EQ(read(ready[0], &b, 1), 1);
    auto fd = ConnectLocal(squat_dir, "10.0.0.1:7701", absl::Seconds(1));
    EXPECT_TRUE(absl::IsPermissionDenied(fd.status())) << fd.status();
    waitpid(squatter, nullptr, 0);
    unlink(LocalSocketPath(squat_dir, "10.0.0.1:7701").c_str());
    rmdir(squat_dir.c_str());
    close(ready[0]);
    close(ready[1]);
    ASSERT_EQ(chmod(run.path.c_str(), 0700), 0);
  }
  // A run directory others may write is refused, and so is a file that is
  // not a socket where the socket goes.
  Rig other;
  other.Start();
  ASSERT_EQ(chmod(run.path.c_str(), 0777), 0);
  EXPECT_TRUE(absl::IsPermissionDenied(other.server->StartLocal(run.path, other.address())));
  ASSERT_EQ(chmod(run.path.c_str(), 0700), 0);
  const std::string squat = LocalSocketPath(run.path, other.address());
  close(open(squat.c_str(), O_CREAT | O_WRONLY, 0600));
  EXPECT_TRUE(absl::IsFailedPrecondition(other.server->StartLocal(run.path, other.address())));
  unlink(squat.c_str());
}

// The test-only site delay: replies to a client of another site come late,
// and late replies do not queue behind each other.
TEST(Wire, RepliesToOtherSitesComeLateButPipelined) {
  TestHandler handler;
  WireServer server(&handler);
  server.SetReplyDelay([](const std::string& site) {
    return site == "far" ? absl::Milliseconds(200) : absl::ZeroDuration();
  });
  ASSERT_TRUE(server.Start("127.0.0.1:0").ok());
  const std::string addr = "127.0.0.1:" + std::to_string(server.port());
  WireClientOptions far_opts, near_opts;
  far_opts.site = "far";
  near_opts.site = "near";
  WireClient far(addr, far_opts), near(addr, near_opts);

  absl::Time t0 = absl::Now();
  EXPECT_EQ(CallAndWait(far, kEcho, "x").data, "x");
  EXPECT_GE(absl::Now() - t0, absl::Milliseconds(200));

  // Ten calls at once: each is late once, not ten times.
  std::vector<WireCall> calls(10);
  std::vector<std::string> outs(10, std::string(8, '\0'));
  WireWaiter w;
  t0 = absl::Now();
  for (int i = 0; i < 10; ++i) {
    calls[i].method = kEcho;
    calls[i].meta = std::to_string(i);
    calls[i].out = outs[i].data();
    calls[i].out_cap = outs[i].size();
    far.Start(&calls[i], &w);
  }
  w.WaitAll(In(10000));
  absl::Duration took = absl::Now() - t0;
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(calls[i].status.ok()) << calls[i].status;
    EXPECT_EQ(outs[i].substr(0, calls[i].out_len), std::to_string(i));
  }
  EXPECT_GE(took, absl::Milliseconds(200));
  EXPECT_LT(took, absl::Milliseconds(1500)) << "late replies were serialized";

  // A client of the node's own site (or one that never said) is not delayed:
  // it gets its reply while a far call is still waiting.
  WireCall slow;
  slow.method = kEcho;
  slow.meta = "late";
  std::string slow_out(8, '\0');
  slow.out = slow_out.data();
  slow.out_cap = slow_out.size();
  WireWaiter sw;
  far.Start(&slow, &sw);
  EXPECT_EQ(CallAndWait(near, kEcho, "n").data, "n");
  WireClient anonymous(addr);
  EXPECT_EQ(CallAndWait(anonymous, kEcho, "a").data, "a");
  sw.WaitAll(In(5000));
  EXPECT_TRUE(slow.status.ok());
  EXPECT_EQ(slow_out.substr(0, slow.out_len), "late");
  server.Shutdown();
}

}  // namespace
}  // namespace ukai::wire
