// The audit log: every call that changes the catalog (the methods only an
// admin may call, rpc_roles.cc) is logged by the node that served it, as
//   AUDIT admin ops Admin.DeleteDisk {name: "vm1" force: true}: OK
// with the caller's identity from its certificate (authorizer.h), the request
// and how it ended. A gRPC server interceptor, so no handler can forget it.
#ifndef UKAI_SECURITY_AUDIT_H_
#define UKAI_SECURITY_AUDIT_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <vector>

namespace ukai::security {

// Whether calls of `path` are audited.
bool Audited(absl::string_view path);
// For ServerBuilder::experimental().SetInterceptorCreators.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
AuditInterceptors();

}  // namespace ukai::security

#endif  // UKAI_SECURITY_AUDIT_H_
