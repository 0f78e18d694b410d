// Test helper: one block I/O call, started and waited for.
#ifndef UKAI_COMMON_WIRE_TESTING_H_
#define UKAI_COMMON_WIRE_TESTING_H_

#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "common/wire_client.h"

namespace ukai::wire {

struct Reply {
  absl::Status status;
  std::string data;
};

// Calls `method` with `meta` and `data` on `client` and waits up to 5 s;
// the reply's data may be up to meta + data + 16 bytes.
inline Reply CallAndWait(WireClient& client, uint16_t method, std::string meta,
                         const std::string& data = "") {
  std::string out(meta.size() + data.size() + 16, '\0');
  WireCall call;
  call.method = method;
  call.meta = std::move(meta);
  call.data = data.data();
  call.data_len = data.size();
  call.out = out.data();
  call.out_cap = out.size();
  WireWaiter w;
  client.Start(&call, &w);
  w.WaitAll(absl::Now() + absl::Seconds(5));
  out.resize(call.out_len);
  return {call.status, out};
}

}  // namespace ukai::wire

#endif  // UKAI_COMMON_WIRE_TESTING_H_
