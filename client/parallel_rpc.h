// ParallelUnary (internal): issues unary RPCs to several nodes at once and
// waits for all of them on a CompletionQueue polled by the calling thread, so
// no executor thread hop sits between a reply and the waiting caller (a
// measured cost on the write path: docs/ARCHITECTURE.md, "Performance").
// Not thread-safe: one caller owns an instance.
#ifndef UKAI_CLIENT_PARALLEL_RPC_H_
#define UKAI_CLIENT_PARALLEL_RPC_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/grpc_status.h"

namespace ukai::client {

template <typename Stub, typename Req, typename Resp>
class ParallelUnary {
 public:
  struct Call {
    std::string node;
    Stub* stub;
    grpc::ClientContext ctx;
    Req req;
    Resp resp;
    grpc::Status grpc_status;
    absl::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;
  };

  // Adds a call to `node` through `stub`; fill its req before Run().
  // `deadline_ms` from now.
  Call& Add(std::string node, Stub* stub, int deadline_ms) {
    calls_.emplace_back();
    Call& c = calls_.back();
    c.node = std::move(node);
    c.stub = stub;
    c.ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    return c;
  }

  // Starts every call with `start(call, &cq)`, which returns the call's
  // prepared (not started) reader, and waits for all.
  template <typename Start>
  void Run(Start start) {
    grpc::CompletionQueue cq;
    for (size_t i = 0; i < calls_.size(); ++i) {
      Call& c = calls_[i];
      c.reader = start(c, &cq);
      c.reader->StartCall();
      c.reader->Finish(&c.resp, &c.grpc_status, reinterpret_cast<void*>(i));
    }
    for (size_t done = 0; done < calls_.size(); ++done) {
      void* tag;
      bool ok;
      if (!cq.Next(&tag, &ok)) break;
    }
    for (auto& c : calls_) c.status = FromGrpc(c.grpc_status);
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }

  std::deque<Call>& calls() { return calls_; }
  bool empty() const { return calls_.empty(); }

 private:
  std::deque<Call> calls_;  // stable addresses: gRPC holds pointers into calls
};

}  // namespace ukai::client

#endif  // UKAI_CLIENT_PARALLEL_RPC_H_
