#include "security/pki.h"

#include <dirent.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "security/files.h"
#include "security/zk_auth.h"

namespace ukai::security {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Crl = std::unique_ptr<X509_CRL, Deleter<X509_CRL, X509_CRL_free>>;
using Names = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;
using Asn1Time = std::unique_ptr<ASN1_TIME, Deleter<ASN1_TIME, ASN1_TIME_free>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

// The newest OpenSSL error, for a message.
std::string SslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

absl::Status SslFailure(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", SslError()));
}

Bio MemBio(const std::string& s) { return Bio(BIO_new_mem_buf(s.data(), int(s.size()))); }

std::string BioString(BIO* b) {
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  return std::string(p, size_t(n));
}

absl::StatusOr<Cert> ParseCert(const std::string& pem) {
  Bio b = MemBio(pem);
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) return absl::InvalidArgumentError("not a PEM certificate: " + SslError());
  return c;
}

absl::StatusOr<Key> ParseKey(const std::string& pem) {
  Bio b = MemBio(pem);
  Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) return absl::InvalidArgumentError("not a PEM private key: " + SslError());
  return k;
}

std::string CertPem(X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), c);
  return BioString(b.get());
}

std::string KeyPem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  return BioString(b.get());
}

absl::StatusOr<Key> NewKey() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) return SslFailure("cannot make a key");
  return k;
}

std::string SerialHex(const ASN1_INTEGER* serial) {
  std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>> bn(ASN1_INTEGER_to_BN(serial, nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  return out;
}

absl::Time TimeOf(const ASN1_TIME* t) {
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromUnixSeconds(timegm(&tm));
}

// A random 127-bit positive serial: unique without a counter to keep.
absl::Status SetRandomSerial(X509* c) {
  std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>> bn(BN_new());
  if (!bn || BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(c)) == nullptr) {
    return SslFailure("cannot make a serial");
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* c, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, c, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return SslFailure("bad extension " + value);
  int ok = X509_add_ext(c, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? absl::OkStatus() : SslFailure("cannot add extension");
}

// A certificate for `key` with subject O=UKAI/OU=`ou`/CN=`cn`, valid from
// `now` for `validity`; not yet signed, its issuer still to be set.
absl::StatusOr<Cert> NewCert(EVP_PKEY* key, const std::string& ou, const std::string& cn,
                             absl::Time now, absl::Duration validity) {
  Cert c(X509_new());
  if (!c || X509_set_version(c.get(), 2) != 1) return SslFailure("cannot make a certificate");
  RETURN_IF_ERROR(SetRandomSerial(c.get()));
  // Backdated a minute: a peer whose clock is a little behind still accepts it.
  time_t t = absl::ToTimeT(now);
  X509_time_adj_ex(X509_getm_notBefore(c.get()), 0, -60, &t);
  const int64_t secs = absl::ToInt64Seconds(validity);
  X509_time_adj_ex(X509_getm_notAfter(c.get()), int(secs / 86400), long(secs % 86400), &t);
  X509_NAME* name = X509_get_subject_name(c.get());
  auto add = [name](const char* field, const std::string& v) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(v.data()), int(v.size()), -1,
                               0);
  };
  add("O", "UKAI");
  add("OU", ou);
  add("CN", cn);
  if (X509_set_pubkey(c.get(), key) != 1) return SslFailure("cannot set the key");
  return c;
}

struct Ca {
  Cert cert;
  Key key;
};

absl::StatusOr<Ca> LoadCa(const std::string& dir) {
  auto pem = ReadSmallFile(dir + "/ca.pem");
  if (absl::IsNotFound(pem.status())) {
    return absl::NotFoundError("no CA in " + dir + " (make one with `ukaictl ca init`)");
  }
  RETURN_IF_ERROR(pem.status());
  RETURN_IF_ERROR(CheckPrivate(dir + "/ca.key"));
  ASSIGN_OR_RETURN(std::string key_pem, ReadSmallFile(dir + "/ca.key"));
  Ca ca;
  ASSIGN_OR_RETURN(ca.cert, ParseCert(*pem));
  ASSIGN_OR_RETURN(ca.key, ParseKey(key_pem));
  return ca;
}

absl::StatusOr<std::set<std::string>> ReadRevoked(const std::string& dir) {
  auto text = ReadSmallFile(dir + "/revoked");
  if (absl::IsNotFound(text.status())) return std::set<std::string>();
  RETURN_IF_ERROR(text.status());
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipWhitespace())) {
    out.insert(std::string(absl::StripAsciiWhitespace(line)));
  }
  return out;
}

// A CRL naming `serials`, signed by the CA.
absl::StatusOr<std::string> SignCrl(const Ca& ca, const std::set<std::string>& serials,
                                    absl::Time now) {
  Crl crl(X509_CRL_new());
  Asn1Time t(ASN1_TIME_set(nullptr, absl::ToTimeT(now)));
  Asn1Time next(ASN1_TIME_set(nullptr, absl::ToTimeT(now + absl::Hours(24 * 3650))));
  if (!crl || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get())) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), t.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
    return SslFailure("cannot make a revocation list");
  }
  for (const std::string& hex : serials) {
    BIGNUM* bn = nullptr;
    if (BN_hex2bn(&bn, hex.c_str()) == 0) continue;
    X509_REVOKED* r = X509_REVOKED_new();
    ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, nullptr);
    X509_REVOKED_set_serialNumber(r, serial);
    X509_REVOKED_set_revocationDate(r, t.get());
    X509_CRL_add0_revoked(crl.get(), r);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), ca.key.get(), EVP_sha256()) == 0) {
    return SslFailure("cannot sign the revocation list");
  }
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_CRL(b.get(), crl.get());
  return BioString(b.get());
}

}  // namespace

absl::StatusOr<CertInfo> ReadCert(const std::string& pem) {
  ASSIGN_OR_RETURN(Cert c, ParseCert(pem));
  CertInfo info;
  info.serial = SerialHex(X509_get0_serialNumber(c.get()));
  info.not_before = TimeOf(X509_get0_notBefore(c.get()));
  info.not_after = TimeOf(X509_get0_notAfter(c.get()));
  Names names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(c.get(), NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
    auto who = ParseIdentityUri(absl::string_view(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), size_t(ASN1_STRING_length(s))));
    if (who.ok()) {
      info.who = *who;
      return info;
    }
  }
  return absl::InvalidArgumentError("the certificate names no UKAI identity (ukai:<role>:<id>)");
}

absl::Status VerifyCert(const std::string& cert_pem, const std::string& ca_pem, absl::Time now) {
  ASSIGN_OR_RETURN(Cert c, ParseCert(cert_pem));
  ASSIGN_OR_RETURN(Cert ca, ParseCert(ca_pem));
  Store store(X509_STORE_new());
  StoreCtx ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), c.get(), nullptr) != 1) {
    return SslFailure("cannot check the certificate");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate not valid against the CA: ",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()))));
  }
  return absl::OkStatus();
}

absl::Status InitCa(const std::string& ca_dir, const std::string& cluster_name, absl::Time now) {
  struct stat st;
  if (stat((ca_dir + "/ca.key").c_str(), &st) == 0) {
    return absl::AlreadyExistsError("a CA already exists in " + ca_dir);
  }
  RETURN_IF_ERROR(MakePrivateDir(ca_dir + "/issued"));
  ASSIGN_OR_RETURN(Key key, NewKey());
  ASSIGN_OR_RETURN(
      Cert c, NewCert(key.get(), "ca", "UKAI CA " + cluster_name, now, absl::Hours(24 * 3650)));
  X509_set_issuer_name(c.get(), X509_get_subject_name(c.get()));
  RETURN_IF_ERROR(AddExtension(c.get(), c.get(), NID_basic_constraints, "critical,CA:TRUE"));
  RETURN_IF_ERROR(AddExtension(c.get(), c.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(c.get(), c.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(c.get(), key.get(), EVP_sha256()) == 0) return SslFailure("cannot sign");
  RETURN_IF_ERROR(WriteFileAtomically(ca_dir + "/ca.key", KeyPem(key.get()), 0600));
  RETURN_IF_ERROR(WriteFileAtomically(ca_dir + "/ca.pem", CertPem(c.get()), 0644));
  RETURN_IF_ERROR(MakeZkSecrets(ca_dir));
  Ca ca{std::move(c), std::move(key)};
  ASSIGN_OR_RETURN(std::string crl, SignCrl(ca, {}, now));
  return WriteFileAtomically(ca_dir + "/crl.pem", crl, 0644);
}

absl::StatusOr<CertInfo> IssueCert(const std::string& ca_dir, const Identity& who,
                                   absl::Duration validity, const std::string& out_dir,
                                   absl::Time now) {
  RETURN_IF_ERROR(ValidateId(who.id));
  if (validity <= absl::ZeroDuration()) return absl::InvalidArgumentError("validity must be > 0");
  ASSIGN_OR_RETURN(Ca ca, LoadCa(ca_dir));
  ASSIGN_OR_RETURN(Key key, NewKey());
  ASSIGN_OR_RETURN(Cert c,
                   NewCert(key.get(), std::string(RoleName(who.role)), who.id, now, validity));
  X509_set_issuer_name(c.get(), X509_get_subject_name(ca.cert.get()));
  std::string san = "URI:" + IdentityUri(who) + ",DNS:" + std::string(RoleName(who.role)) + ".ukai";
  RETURN_IF_ERROR(AddExtension(c.get(), ca.cert.get(), NID_subject_alt_name, san));
  RETURN_IF_ERROR(AddExtension(c.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(c.get(), ca.cert.get(), NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(c.get(), ca.cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(AddExtension(c.get(), ca.cert.get(), NID_authority_key_identifier, "keyid"));
  if (X509_sign(c.get(), ca.key.get(), EVP_sha256()) == 0) return SslFailure("cannot sign");
  const std::string pem = CertPem(c.get());
  ASSIGN_OR_RETURN(CertInfo info, ReadCert(pem));
  RETURN_IF_ERROR(WriteFileAtomically(ca_dir + "/issued/" + info.serial + ".pem", pem, 0644));
  ASSIGN_OR_RETURN(std::string zk_secret, ReadSmallFile(ZkSecretFor(ca_dir, who.role)));
  RETURN_IF_ERROR(MakePrivateDir(out_dir));
  RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/" + kZkAuthFile, zk_secret, 0600));
  RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/key.pem", KeyPem(key.get()), 0600));
  RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/ca.pem", CertPem(ca.cert.get()), 0644));
  RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/cert.pem", pem, 0644));
  return info;
}

absl::StatusOr<std::vector<IssuedCert>> ListIssued(const std::string& ca_dir) {
  ASSIGN_OR_RETURN(auto revoked, ReadRevoked(ca_dir));
  DIR* d = opendir((ca_dir + "/issued").c_str());
  if (d == nullptr) return absl::NotFoundError("no CA in " + ca_dir);
  std::vector<IssuedCert> out;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 4) != ".pem") continue;
    auto pem = ReadSmallFile(ca_dir + "/issued/" + name);
    if (!pem.ok()) continue;
    auto info = ReadCert(*pem);
    if (!info.ok()) continue;
    out.push_back({*info, revoked.count(info->serial) > 0});
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const IssuedCert& a, const IssuedCert& b) {
    return a.info.not_before != b.info.not_before ? a.info.not_before < b.info.not_before
                                                  : a.info.serial < b.info.serial;
  });
  return out;
}

absl::StatusOr<std::vector<CertInfo>> Revoke(const std::string& ca_dir,
                                             const std::vector<std::string>& serials,
                                             absl::Time now) {
  ASSIGN_OR_RETURN(Ca ca, LoadCa(ca_dir));
  ASSIGN_OR_RETURN(auto revoked, ReadRevoked(ca_dir));
  std::vector<CertInfo> done;
  for (const std::string& s : serials) {
    std::string serial = absl::AsciiStrToUpper(s);
    auto pem = ReadSmallFile(ca_dir + "/issued/" + serial + ".pem");
    if (absl::IsNotFound(pem.status()) || serial.find('/') != std::string::npos) {
      return absl::NotFoundError("this CA issued no certificate with serial " + s);
    }
    RETURN_IF_ERROR(pem.status());
    ASSIGN_OR_RETURN(CertInfo info, ReadCert(*pem));
    revoked.insert(serial);
    done.push_back(info);
  }
  std::string list;
  for (const std::string& s : revoked) absl::StrAppend(&list, s, "\n");
  ASSIGN_OR_RETURN(std::string crl, SignCrl(ca, revoked, now));
  RETURN_IF_ERROR(WriteFileAtomically(ca_dir + "/revoked", list, 0644));
  RETURN_IF_ERROR(WriteFileAtomically(ca_dir + "/crl.pem", crl, 0644));
  return done;
}

absl::StatusOr<std::set<std::string>> RevokedSerials(const std::string& crl_pem,
                                                     const std::string& ca_pem) {
  ASSIGN_OR_RETURN(Cert ca, ParseCert(ca_pem));
  Bio b = MemBio(crl_pem);
  Crl crl(PEM_read_bio_X509_CRL(b.get(), nullptr, nullptr, nullptr));
  if (!crl) return absl::InvalidArgumentError("not a PEM revocation list: " + SslError());
  EVP_PKEY* ca_key = X509_get0_pubkey(ca.get());
  if (ca_key == nullptr || X509_CRL_verify(crl.get(), ca_key) != 1) {
    return absl::InvalidArgumentError("the revocation list is not signed by the cluster CA");
  }
  std::set<std::string> out;
  STACK_OF(X509_REVOKED)* list = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; list != nullptr && i < sk_X509_REVOKED_num(list); ++i) {
    out.insert(SerialHex(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(list, i))));
  }
  return out;
}

}  // namespace ukai::security
