#include "common/log.h"

#include <grpc/support/log.h>

#include <atomic>
#include <cstdio>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ukai {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_grpc_errors{static_cast<int>(LogLevel::kInfo)};
const char* Name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}
void GrpcLog(gpr_log_func_args* args) {
  LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR
                       ? static_cast<LogLevel>(g_grpc_errors.load())
                       : LogLevel::kDebug;
  if (LogEnabled(level)) LogLine(level, absl::StrFormat("grpc: %s", args->message));
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level; }

void RouteGrpcLogs(LogLevel errors_at) {
  g_grpc_errors = static_cast<int>(errors_at);
  gpr_set_log_function(GrpcLog);
}

void LogLine(LogLevel level, const std::string& msg) {
  std::string line = absl::FormatTime("%Y-%m-%dT%H:%M:%E3S", absl::Now(), absl::UTCTimeZone()) +
                     " " + Name(level) + " " + msg + "\n";
  fwrite(line.data(), 1, line.size(), stderr);  // one write: lines never interleave
}

}  // namespace ukai
