// Who a UKAI process is: a role and an id, as its certificate names them.
// A certificate carries its identity as the URI subject alternative name
// "ukai:<role>:<id>" (docs/SECURITY.md); nodes' certificates also carry the
// DNS name "node.ukai", which every channel to a node verifies the server
// against, so a frontend's or admin's certificate cannot pose as a node.
#ifndef UKAI_SECURITY_IDENTITY_H_
#define UKAI_SECURITY_IDENTITY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ukai::security {

// node: a storage node (ukai-node); frontend: a hypervisor (ukai-fuse, or a
// libukai program); admin: an operator or cloud controller (ukaictl);
// backup: reads snapshots only.
enum class Role : uint8_t { kNode = 0, kFrontend = 1, kAdmin = 2, kBackup = 3 };
constexpr int kRoles = 4;

// A set of roles, as the authorization table (authorizer.h) keeps them.
using Roles = uint8_t;
constexpr Roles RoleBit(Role r) { return static_cast<Roles>(1u << static_cast<unsigned>(r)); }

absl::string_view RoleName(Role role);
// INVALID_ARGUMENT naming the roles for anything else.
absl::StatusOr<Role> ParseRole(absl::string_view name);

struct Identity {
  Role role = Role::kFrontend;
  std::string id;
  // "frontend hv7", for errors and the audit log.
  std::string ToString() const;
  bool operator==(const Identity&) const = default;
};

// 1 to 64 of [A-Za-z0-9._-]: what node ids and host names already are.
absl::Status ValidateId(absl::string_view id);
std::string IdentityUri(const Identity& who);  // "ukai:frontend:hv7"
// INVALID_ARGUMENT unless `uri` is "ukai:<role>:<valid id>".
absl::StatusOr<Identity> ParseIdentityUri(absl::string_view uri);

// The DNS name every node's certificate carries and channels to nodes check.
constexpr char kNodeServerName[] = "node.ukai";

}  // namespace ukai::security

#endif  // UKAI_SECURITY_IDENTITY_H_
