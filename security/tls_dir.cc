#include "security/tls_dir.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "security/files.h"

namespace ukai::security {
namespace {

absl::Status InDir(const std::string& dir, const absl::Status& s) {
  return absl::Status(absl::IsNotFound(s) ? absl::StatusCode::kFailedPrecondition : s.code(),
                      absl::StrCat("TLS directory ", dir, ": ", s.message()));
}

}  // namespace

absl::StatusOr<TlsDir> TlsDir::Open(const std::string& dir, absl::Time now) {
  TlsDir t;
  t.dir = dir;
  auto ca = ReadSmallFile(t.ca_path());
  if (!ca.ok()) return InDir(dir, ca.status());
  auto cert = ReadSmallFile(t.cert_path());
  if (!cert.ok()) return InDir(dir, cert.status());
  if (auto s = CheckPrivate(t.key_path()); !s.ok()) return InDir(dir, s);
  if (auto s = VerifyCert(*cert, *ca, now); !s.ok()) return InDir(dir, s);
  auto self = ReadCert(*cert);
  if (!self.ok()) return InDir(dir, self.status());
  t.self = *self;
  t.ca = *ca;
  return t;
}

}  // namespace ukai::security
