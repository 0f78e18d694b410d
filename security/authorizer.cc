#include "security/authorizer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"

namespace ukai::security {
namespace {

constexpr char kIdentityProperty[] = "ukai_identity";
constexpr size_t kMaxParsed = 1024;

std::string Value(const grpc::string_ref& r) { return std::string(r.data(), r.size()); }

}  // namespace

std::string MethodName(absl::string_view path) {
  if (path.size() > 1 && path[0] == '/') path.remove_prefix(1);
  size_t dot = path.rfind('.', path.find('/'));
  if (dot != absl::string_view::npos) path.remove_prefix(dot + 1);
  std::string out(path);
  for (char& c : out) c = c == '/' ? '.' : c;
  return out;
}

std::string RolesText(Roles roles) {
  std::vector<std::string> names;
  for (int i = 0; i < kRoles; ++i) {
    if (roles & RoleBit(static_cast<Role>(i))) {
      names.push_back(std::string(RoleName(static_cast<Role>(i))));
    }
  }
  return names.empty() ? "nobody" : absl::StrJoin(names, ", ");
}

absl::StatusOr<CertInfo> Authorizer::Parse(const std::string& cert_pem) {
  {
    absl::MutexLock l(&mu_);
    auto it = parsed_.find(cert_pem);
    if (it != parsed_.end()) return it->second;
  }
  auto info = ReadCert(cert_pem);
  if (!info.ok()) return info.status();
  absl::MutexLock l(&mu_);
  if (parsed_.size() >= kMaxParsed) parsed_.clear();
  parsed_.emplace(cert_pem, *info);
  return info;
}

absl::StatusOr<Identity> Authorizer::Check(absl::string_view path, const std::string& cert_pem) {
  auto info = Parse(cert_pem);
  if (!info.ok()) {
    return absl::UnauthenticatedError(absl::StrCat("refused: ", info.status().message()));
  }
  if (revocations_ != nullptr && revocations_->Revoked(info->serial)) {
    return absl::UnauthenticatedError(absl::StrCat("refused: the certificate of ",
                                                   info->who.ToString(), " (serial ", info->serial,
                                                   ") is revoked"));
  }
  const Roles allowed = AllowedRoles(path);
  if ((allowed & RoleBit(info->who.role)) == 0) {
    return absl::PermissionDeniedError(absl::StrCat("refused: ", info->who.ToString(),
                                                    " may not call ", MethodName(path), " (",
                                                    RolesText(allowed), " only)"));
  }
  return info->who;
}

grpc::Status Authorizer::Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                                 OutputMetadata* /*consumed*/, OutputMetadata* /*response*/) {
  auto path = auth_metadata.find(":path");
  if (path == auth_metadata.end()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "refused: a call without a method");
  }
  std::vector<grpc::string_ref> pems = context->FindPropertyValues("x509_pem_cert");
  if (pems.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "refused: no client certificate");
  }
  auto who = Check(Value(path->second), Value(pems[0]));
  if (!who.ok()) return ToGrpc(who.status());
  context->AddProperty(kIdentityProperty, IdentityUri(*who));
  return grpc::Status::OK;
}

std::optional<Identity> CallerIdentity(const grpc::ServerContextBase& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth == nullptr) return std::nullopt;
  std::vector<grpc::string_ref> v = auth->FindPropertyValues(kIdentityProperty);
  if (v.empty()) return std::nullopt;
  auto who = ParseIdentityUri(absl::string_view(v[0].data(), v[0].size()));
  if (!who.ok()) return std::nullopt;
  return *who;
}

std::string CallerOf(const grpc::ServerContextBase& ctx) {
  auto who = CallerIdentity(ctx);
  return who ? who->ToString() : "an unauthenticated caller (plaintext)";
}

}  // namespace ukai::security
