// rpc_bench: the cost of gRPC's transport alone on this machine, unary calls
// against one bidirectional stream, and against one stream whose sender
// coalesces every request queued meanwhile into one message, with 4 KiB
// payloads (the size of the I/O the 4k fio jobs do). A UKAI 4 KiB read is one unary call
// plus FUSE and storage, a write two calls; this says how far a streaming
// data path could move that ceiling. Run by bench/rpc.sh.
//
//   rpc_bench serve PORT                       an echo server (own process)
//   rpc_bench unary|stream|batch ADDRESS [--depth 16] [--seconds 5]
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "bench.grpc.pb.h"
#include "common/channel.h"
#include "common/wire_client.h"
#include "common/wire_server.h"

namespace {

using ukai::bench::Batch;
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
  grpc::Status BatchStream(grpc::ServerContext*,
                           grpc::ServerReaderWriter<Batch, Batch>* s) override {
    Batch m;
    while (s->Read(&m)) {
      if (!s->Write(m)) break;
    }
    return grpc::Status::OK;
  }
};

// The block I/O transport's echo: the reply carries the request's data.
class WireEcho final : public ukai::wire::WireHandler {
  absl::Status Handle(const ukai::wire::WirePeer&, uint16_t, absl::string_view,
                      absl::string_view data, std::string* reply, bool) override {
    reply->assign(data.data(), data.size());
    return absl::OkStatus();
  }
  bool Slow(uint16_t) const override { return false; }
};

int Serve(int port) {
  WireEcho wire_echo;
  ukai::wire::WireServer wire(&wire_echo);
  if (!wire.Start("127.0.0.1:" + std::to_string(port + 1)).ok()) return 1;
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

// `depth` threads, each doing one round trip at a time with its own caller
// from `make_caller()` (a callable returning true on success) for `seconds`.
template <typename MakeCaller>
uint64_t RunCallers(int depth, int seconds, MakeCaller make_caller) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> n{0};
  std::vector<std::thread> t;
  for (int i = 0; i < depth; ++i) {
    t.emplace_back([&] {
      auto call = make_caller();
      while (!stop) {
        if (call()) n++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& th : t) th.join();
  return n;
}

// `depth` callers, each with one unary call in flight.
uint64_t RunUnary(EchoService::Stub* stub, int depth, int seconds) {
  return RunCallers(depth, seconds, [stub] {
    auto req = std::make_shared<Echo>();
    req->set_payload(std::string(4096, 'x'));
    return [stub, req] {
      grpc::ClientContext ctx;
      Echo resp;
      return stub->Unary(&ctx, *req, &resp).ok();
    };
  });
}

// `depth` callers on one block I/O transport connection (port + 1 of the
// gRPC server), each with one call in flight, as libukai does.
uint64_t RunWire(const std::string& address, int depth, int seconds) {
  ukai::wire::WireClient client(address);
  return RunCallers(depth, seconds, [&client] {
    auto payload = std::make_shared<std::string>(4096, 'x');
    auto out = std::make_shared<std::string>(4096, '\0');
    return [&client, payload, out] {
      ukai::wire::WireCall call;
      call.method = 1;
      call.data = payload->data();
      call.data_len = payload->size();
      call.out = out->data();
      call.out_cap = out->size();
      ukai::wire::WireWaiter w;
      client.Start(&call, &w);
      w.WaitAll(absl::Now() + absl::Seconds(5));
      return call.status.ok() && call.out_len == payload->size();
    };
  });
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

// One stream; `depth` callers queue requests, one sender thread sends all
// that are queued as one Batch, one reader completes them.
uint64_t RunBatch(EchoService::Stub* stub, int depth, int seconds) {
  grpc::ClientContext ctx;
  auto stream = stub->BatchStream(&ctx);
  std::mutex mu;
  std::condition_variable queued_cv, done_cv;
  std::vector<uint64_t> queue;
  std::map<uint64_t, bool> done;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> n{0}, next_id{1}, batches{0};
  const std::string payload(4096, 'x');
  std::thread sender([&] {
    while (true) {
      std::vector<uint64_t> ids;
      {
        std::unique_lock<std::mutex> l(mu);
        queued_cv.wait(l, [&] { return stop || !queue.empty(); });
        if (queue.empty()) break;
        ids.swap(queue);
      }
      Batch b;
      for (uint64_t id : ids) {
        Echo* e = b.add_items();
        e->set_id(id);
        e->set_payload(payload);
      }
      batches++;
      if (!stream->Write(b)) break;
    }
    stream->WritesDone();
  });
  std::thread reader([&] {
    Batch b;
    while (stream->Read(&b)) {
      std::lock_guard<std::mutex> l(mu);
      for (const auto& e : b.items()) done[e.id()] = true;
      done_cv.notify_all();
    }
  });
  std::vector<std::thread> t;
  for (int i = 0; i < depth; ++i) {
    t.emplace_back([&] {
      while (!stop) {
        uint64_t id = next_id++;
        std::unique_lock<std::mutex> l(mu);
        queue.push_back(id);
        queued_cv.notify_one();
        done_cv.wait(l, [&] { return done.count(id) > 0; });
        done.erase(id);
        n++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& th : t) th.join();
  {
    std::lock_guard<std::mutex> l(mu);
    queued_cv.notify_all();
  }
  sender.join();
  reader.join();
  (void)stream->Finish();
  fprintf(stderr, "rpc_bench: %.1f requests per message\n",
          batches ? static_cast<double>(n) / batches : 0.0);
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
  auto* batch = app.add_subcommand("batch", "one stream, queued requests coalesced per message");
  auto* wire = app.add_subcommand("wire", "UKAI's block I/O transport (port + 1), DEPTH in flight");
  for (auto* sub : {unary, stream, batch, wire}) {
    sub->add_option("address", address)->required();
    sub->add_option("--depth", depth)->capture_default_str();
    sub->add_option("--seconds", seconds)->capture_default_str();
  }
  CLI11_PARSE(app, argc, argv);
  if (*serve) return Serve(port);
  if (*wire) {
    size_t colon = address.rfind(':');
    std::string wire_address =
        address.substr(0, colon) + ":" + std::to_string(std::stoi(address.substr(colon + 1)) + 1);
    uint64_t n = RunWire(wire_address, depth, seconds);
    printf("{\"mode\": \"wire\", \"depth\": %d, \"round_trips_per_second\": %.0f}\n", depth,
           static_cast<double>(n) / seconds);
    return n > 0 ? 0 : 1;
  }
  auto stub = EchoService::NewStub(ukai::InsecureChannels()(address));
  const char* mode = *unary ? "unary" : *stream ? "stream" : "batch";
  uint64_t n = *unary    ? RunUnary(stub.get(), depth, seconds)
               : *stream ? RunStream(stub.get(), depth, seconds)
                         : RunBatch(stub.get(), depth, seconds);
  printf("{\"mode\": \"%s\", \"depth\": %d, \"round_trips_per_second\": %.0f}\n", mode, depth,
         static_cast<double>(n) / seconds);
  return n > 0 ? 0 : 1;
}
