// rpc_bench: the cost of gRPC's transport alone on this machine, unary calls
// against one bidirectional stream, side by side, with 4 KiB payloads (the
// size of the I/O the 4k fio jobs do). A UKAI 4 KiB read is one unary call
// plus FUSE and storage, a write two calls; this says how far a streaming
// data path could move that ceiling. Run by bench/rpc.sh.
//
//   rpc_bench serve PORT                       an echo server (own process)
//   rpc_bench unary|stream ADDRESS [--depth 16] [--seconds 5]
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "bench.grpc.pb.h"
#include "common/channel.h"

namespace {

using ukai::bench::Echo;
using ukai::bench::EchoService;

class EchoImpl final : public EchoService::Service {
  grpc::Status Unary(grpc::ServerContext*, const Echo* in, Echo* out) override {
    *out = *in;
    return grpc::Status::OK;
  }
  grpc::Status Stream(grpc::ServerContext*, grpc::ServerReaderWriter<Echo, Echo>* s) override {
    Echo m;
    while (s->Read(&m)) {
      if (!s->Write(m)) break;
    }
    return grpc::Status::OK;
  }
};

int Serve(int port) {
  EchoImpl impl;
  grpc::ServerBuilder b;
  ukai::ConfigureServer(b);
  b.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials());
  b.RegisterService(&impl);
  auto server = b.BuildAndStart();
  if (!server) return 1;
  server->Wait();
  return 0;
}

// `depth` callers, each with one unary call in flight.
uint64_t RunUnary(EchoService::Stub* stub, int depth, int seconds) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> n{0};
  std::vector<std::thread> t;
  for (int i = 0; i < depth; ++i) {
    t.emplace_back([&] {
      Echo req, resp;
      req.set_payload(std::string(4096, 'x'));
      while (!stop) {
        grpc::ClientContext ctx;
        if (stub->Unary(&ctx, req, &resp).ok()) n++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& th : t) th.join();
  return n;
}

// One stream; `depth` callers share it, each waiting for its own echo (as
// I/O requests would), matched by id on one reader thread.
uint64_t RunStream(EchoService::Stub* stub, int depth, int seconds) {
  grpc::ClientContext ctx;
  auto stream = stub->Stream(&ctx);
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, bool> done;
  std::mutex write_mu;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> n{0}, next_id{1};
  std::thread reader([&] {
    Echo m;
    while (stream->Read(&m)) {
      std::lock_guard<std::mutex> l(mu);
      done[m.id()] = true;
      cv.notify_all();
    }
  });
  std::vector<std::thread> t;
  for (int i = 0; i < depth; ++i) {
    t.emplace_back([&] {
      Echo req;
      req.set_payload(std::string(4096, 'x'));
      while (!stop) {
        uint64_t id = next_id++;
        req.set_id(id);
        {
          std::lock_guard<std::mutex> l(write_mu);
          if (!stream->Write(req)) return;
        }
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return done.count(id) > 0; });
        done.erase(id);
        n++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& th : t) th.join();
  stream->WritesDone();
  reader.join();
  (void)stream->Finish();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rpc_bench: gRPC transport cost, unary vs streaming, 4 KiB payloads"};
  app.require_subcommand(1);
  int port = 0, depth = 16, seconds = 5;
  std::string address;
  auto* serve = app.add_subcommand("serve", "run the echo server");
  serve->add_option("port", port)->required();
  auto* unary = app.add_subcommand("unary", "unary calls, DEPTH in flight");
  auto* stream = app.add_subcommand("stream", "one bidirectional stream, DEPTH in flight");
  for (auto* sub : {unary, stream}) {
    sub->add_option("address", address)->required();
    sub->add_option("--depth", depth)->capture_default_str();
    sub->add_option("--seconds", seconds)->capture_default_str();
  }
  CLI11_PARSE(app, argc, argv);
  if (*serve) return Serve(port);
  auto stub = EchoService::NewStub(ukai::MakeChannel(address));
  uint64_t n = *unary ? RunUnary(stub.get(), depth, seconds) : RunStream(stub.get(), depth, seconds);
  printf("{\"mode\": \"%s\", \"depth\": %d, \"round_trips_per_second\": %.0f}\n",
         *unary ? "unary" : "stream", depth, static_cast<double>(n) / seconds);
  return n > 0 ? 0 : 1;
}
