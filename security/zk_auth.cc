#include "security/zk_auth.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "security/files.h"

namespace ukai::security {
namespace {

constexpr char kReadOnlyFile[] = "zk-auth-ro";
// ZooKeeper's permission bits (zookeeper.h's ZOO_PERM_*).
constexpr int kRead = 1, kWrite = 2, kCreate = 4, kDelete = 8, kAdmin = 16;

absl::StatusOr<std::string> Credential(const std::string& user) {
  unsigned char raw[24];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return absl::InternalError("no random bytes");
  return absl::StrCat(
      user, ":",
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(raw), sizeof(raw))));
}

absl::StatusOr<int> ParsePerms(absl::string_view letters) {
  int perms = 0;
  for (char c : letters) {
    int bit = c == 'r'   ? kRead
              : c == 'w' ? kWrite
              : c == 'c' ? kCreate
              : c == 'd' ? kDelete
              : c == 'a' ? kAdmin
                         : 0;
    if (bit == 0) return absl::InvalidArgumentError(absl::StrCat("bad permission '", letters, "'"));
    perms |= bit;
  }
  return perms;
}

}  // namespace

std::string DigestId(const std::string& credential) {
  unsigned char sha[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(credential.data(), credential.size(), sha, &len, EVP_sha1(), nullptr);
  std::string user = credential.substr(0, credential.find(':'));
  return absl::StrCat(user, ":",
                      absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(sha), len)));
}

absl::Status MakeZkSecrets(const std::string& ca_dir) {
  ASSIGN_OR_RETURN(std::string rw, Credential("ukai"));
  ASSIGN_OR_RETURN(std::string ro, Credential("ukai-ro"));
  const std::string acl = absl::StrCat("acl ", DigestId(rw), " cdrwa\nacl ", DigestId(ro), " r\n");
  const std::string head = "# UKAI's ZooKeeper credential (docs/SECURITY.md): root only.\n";
  RETURN_IF_ERROR(WriteFileAtomically(ca_dir + "/" + kZkAuthFile,
                                      absl::StrCat(head, "credential ", rw, "\n", acl), 0600));
  return WriteFileAtomically(ca_dir + "/" + kReadOnlyFile,
                             absl::StrCat(head, "credential ", ro, "\n", acl), 0600);
}

std::string ZkSecretFor(const std::string& ca_dir, Role role) {
  return ca_dir + "/" + (role == Role::kBackup ? kReadOnlyFile : kZkAuthFile);
}

absl::StatusOr<meta::ZkAuth> ReadZkAuth(const std::string& path) {
  RETURN_IF_ERROR(CheckPrivate(path));
  ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, 64 << 10));
  meta::ZkAuth auth;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++n;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.empty() || f[0][0] == '#') continue;
    bool ok = f.size() >= 2 && f[1].find(':') != absl::string_view::npos;
    if (f[0] == "credential" && f.size() == 2 && ok) {
      auth.credential = std::string(f[1]);
    } else if (f[0] == "acl" && f.size() == 3 && ok) {
      auto perms = ParsePerms(f[2]);
      if (!perms.ok()) ok = false;
      if (ok) auth.acl.push_back({std::string(f[1]), *perms});
    } else {
      ok = false;
    }
    if (!ok) return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": not understood"));
  }
  if (auth.credential.empty() || auth.acl.empty()) {
    return absl::InvalidArgumentError(path + ": needs a credential line and acl lines");
  }
  return auth;
}

}  // namespace ukai::security
