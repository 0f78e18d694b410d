// The one place absl::Status and grpc::Status convert (their codes are equal;
// a Reason, common/reason.h, rides in error_details).
#ifndef UKAI_COMMON_GRPC_STATUS_H_
#define UKAI_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ukai {
grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);
}  // namespace ukai

#endif  // UKAI_COMMON_GRPC_STATUS_H_
