#include "security/identity.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ukai::security {
namespace {
constexpr absl::string_view kNames[kRoles] = {"node", "frontend", "admin", "backup"};
constexpr absl::string_view kScheme = "ukai:";
}  // namespace

absl::string_view RoleName(Role role) { return kNames[static_cast<int>(role)]; }

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (int i = 0; i < kRoles; ++i) {
    if (name == kNames[i]) return static_cast<Role>(i);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "' (node, frontend, admin or backup)"));
}

std::string Identity::ToString() const { return absl::StrCat(RoleName(role), " ", id); }

absl::Status ValidateId(absl::string_view id) {
  bool ok = !id.empty() && id.size() <= 64;
  for (char c : id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid id '", id.substr(0, 80), "' (1 to 64 of A-Z a-z 0-9 . _ -)"));
}

std::string IdentityUri(const Identity& who) {
  return absl::StrCat(kScheme, RoleName(who.role), ":", who.id);
}

absl::StatusOr<Identity> ParseIdentityUri(absl::string_view uri) {
  if (!absl::StartsWith(uri, kScheme)) {
    return absl::InvalidArgumentError("not a UKAI identity: no ukai: URI");
  }
  uri.remove_prefix(kScheme.size());
  size_t colon = uri.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError("not a UKAI identity: want ukai:<role>:<id>");
  }
  Identity who;
  auto role = ParseRole(uri.substr(0, colon));
  if (!role.ok()) return role.status();
  who.role = *role;
  who.id = std::string(uri.substr(colon + 1));
  if (auto s = ValidateId(who.id); !s.ok()) return s;
  return who;
}

}  // namespace ukai::security
