#include "security/audit.h"

#include <google/protobuf/message.h>

#include <string>

#include "common/log.h"
#include "security/authorizer.h"

namespace ukai::security {
namespace {

using grpc::experimental::InterceptionHookPoints;
constexpr size_t kMaxRequestText = 512;

class AuditInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit AuditInterceptor(grpc::experimental::ServerRpcInfo* info) : info_(info) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      const auto* msg = static_cast<const google::protobuf::Message*>(methods->GetRecvMessage());
      if (msg != nullptr) request_ = msg->ShortDebugString().substr(0, kMaxRequestText);
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status s = methods->GetSendStatus();
      const std::string outcome =
          s.ok() ? "OK" : absl::StrCat("error ", int(s.error_code()), " ", s.error_message());
      LOG_INFO("AUDIT %s %s {%s}: %s", CallerOf(*info_->server_context()),
               MethodName(info_->method()), request_, outcome);
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* const info_;
  std::string request_;
};

class AuditFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return Audited(info->method()) ? new AuditInterceptor(info) : nullptr;
  }
};

}  // namespace

bool Audited(absl::string_view path) { return AllowedRoles(path) == RoleBit(Role::kAdmin); }

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
AuditInterceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<AuditFactory>());
  return out;
}

}  // namespace ukai::security
