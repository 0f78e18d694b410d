// Minimal leveled logging to stderr: one line per event, with a timestamp.
// Thread-safe. The integration harness fails a run on any "ERROR" line, so
// ERROR is for broken invariants only; expected failures (a dead peer) are WARN.
#ifndef UKAI_COMMON_LOG_H_
#define UKAI_COMMON_LOG_H_

#include "absl/strings/str_format.h"

namespace ukai {
enum class LogLevel { kDebug, kInfo, kWarn, kError };
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, const std::string& msg);
// gRPC's own messages through LogLine, prefixed "grpc: ": its errors (a TLS
// handshake a stranger failed, a peer gone) at `errors_at`, the rest at
// kDebug, instead of gRPC's own format on stderr.
void RouteGrpcLogs(LogLevel errors_at);
}  // namespace ukai

#define UKAI_LOG(level, ...)                                                  \
  do {                                                                        \
    if (::ukai::LogEnabled(::ukai::LogLevel::level))                          \
      ::ukai::LogLine(::ukai::LogLevel::level, absl::StrFormat(__VA_ARGS__)); \
  } while (0)
#define LOG_DEBUG(...) UKAI_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) UKAI_LOG(kInfo, __VA_ARGS__)
#define LOG_WARN(...) UKAI_LOG(kWarn, __VA_ARGS__)
#define LOG_ERROR(...) UKAI_LOG(kError, __VA_ARGS__)

#endif  // UKAI_COMMON_LOG_H_
