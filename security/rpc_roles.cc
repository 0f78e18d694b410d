// The authorization table of the gRPC services: docs/SECURITY.md prints it.
// Change both together.
#include <map>
#include <string>

#include "security/authorizer.h"

namespace ukai::security {
namespace {

constexpr Roles N = RoleBit(Role::kNode);
constexpr Roles F = RoleBit(Role::kFrontend);
constexpr Roles A = RoleBit(Role::kAdmin);
constexpr Roles B = RoleBit(Role::kBackup);

const std::map<std::string, Roles, std::less<>>& Table() {
  static const auto* table = new std::map<std::string, Roles, std::less<>>{
      // Liveness and latency: every member of the cluster.
      {"/ukai.pb.NodeOps/Ping", N | F | A | B},
      // A node's store statistics: the admin service on another node fans
      // out to them; operators read them through it.
      {"/ukai.pb.NodeOps/Stat", N | A},
      // Dropping a deleted disk's data: the node serving the delete.
      {"/ukai.pb.NodeOps/DropDisk", N},
      // Node to node: fencing, block copies, scrub, collection (jobs run on
      // nodes).
      {"/ukai.pb.NodeCopy/Fence", N},
      {"/ukai.pb.NodeCopy/CopyBlock", N},
      {"/ukai.pb.NodeCopy/Objects", N},
      {"/ukai.pb.NodeCopy/FinishObject", N},
      {"/ukai.pb.NodeCopy/Checksums", N},
      {"/ukai.pb.NodeCopy/Sync", N},
      {"/ukai.pb.NodeCopy/Collect", N},
      {"/ukai.pb.NodeCopy/Fill", N},
      // The catalog, read: operators and backup hosts.
      {"/ukai.pb.Admin/ListNodes", A | B},
      {"/ukai.pb.Admin/ListDisks", A | B},
      {"/ukai.pb.Admin/GetDisk", A | B},
      {"/ukai.pb.Admin/ListSnapshots", A | B},
      {"/ukai.pb.Admin/ListJobs", A | B},
      {"/ukai.pb.Admin/GetJob", A | B},
      // The catalog, changed: operators only.
      {"/ukai.pb.Admin/CreateDisk", A},
      {"/ukai.pb.Admin/ResizeDisk", A},
      {"/ukai.pb.Admin/SetPolicy", A},
      {"/ukai.pb.Admin/DeleteDisk", A},
      {"/ukai.pb.Admin/Relocate", A},
      {"/ukai.pb.Admin/Repair", A},
      {"/ukai.pb.Admin/Scrub", A},
      {"/ukai.pb.Admin/DrainNode", A},
      {"/ukai.pb.Admin/RemoveNode", A},
      {"/ukai.pb.Admin/CancelJob", A},
      {"/ukai.pb.Admin/CreateSnapshot", A},
      {"/ukai.pb.Admin/DeleteSnapshot", A},
      {"/ukai.pb.Admin/Clone", A},
      {"/ukai.pb.Admin/Flatten", A},
      {"/ukai.pb.Admin/Rollback", A},
  };
  return *table;
}

}  // namespace

Roles AllowedRoles(absl::string_view path) {
  auto it = Table().find(path);
  return it == Table().end() ? Roles{0} : it->second;
}

}  // namespace ukai::security
