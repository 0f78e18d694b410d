#include "common/wire_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/status.h"

namespace ukai::wire {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

struct HostPort {
  std::string host;
  std::string port;
};

absl::StatusOr<HostPort> Split(const std::string& address) {
  size_t colon = address.rfind(':');
  int port;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError("bad address '" + address + "' (want host:port)");
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return HostPort{host, address.substr(colon + 1)};
}

absl::StatusOr<struct addrinfo*> Resolve(const std::string& address, bool passive) {
  auto hp = Split(address);
  if (!hp.ok()) return hp.status();
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  struct addrinfo* res = nullptr;
  int rc = getaddrinfo(hp->host.c_str(), hp->port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::UnavailableError(
        absl::StrFormat("cannot resolve '%s': %s", address, gai_strerror(rc)));
  }
  return res;
}

int BoundPort(int fd) {
  struct sockaddr_storage ss = {};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port);
}

// Fills `sa` with the socket path for `address`; false if it does not fit.
bool LocalName(const std::string& path, struct sockaddr_un* sa, socklen_t* len) {
  if (path.size() + 1 > sizeof(sa->sun_path)) return false;
  *sa = {};
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

bool TrustedUid(uid_t uid) { return uid == 0 || uid == geteuid(); }

// Makes `dir` (0700) or checks an existing one is private enough to hold the
// socket: a directory, of root or this user, writable by nobody else.
absl::Status PrepareRunDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Errno("cannot make the run directory " + dir);
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return Errno("run directory " + dir);
  if (!S_ISDIR(st.st_mode) || !TrustedUid(st.st_uid) || (st.st_mode & 022) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "run directory %s must be a directory of root or uid %d that only its owner can write "
        "(it is mode %o, uid %d)",
        dir, geteuid(), st.st_mode & 07777, st.st_uid));
  }
  return absl::OkStatus();
}

// Removes what an earlier server left at `path`: only a socket file.
absl::Status RemoveStaleSocket(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(path + " exists and is not a socket; not replacing it");
  }
  if (unlink(path.c_str()) != 0) return Errno("cannot remove the stale socket " + path);
  return absl::OkStatus();
}

void SetSendTimeout(int fd, absl::Duration send_timeout) {
  struct timeval tv = absl::ToTimeval(send_timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

}  // namespace

std::string LocalSocketPath(const std::string& run_dir, const std::string& address) {
  return run_dir + "/io-" + address + ".sock";
}

absl::Status CheckLocalPeer(int fd) {
  struct ucred cred = {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return Errno("SO_PEERCRED");
  if (!TrustedUid(cred.uid)) {
    return absl::PermissionDeniedError(
        absl::StrFormat("same-host peer is uid %d (pid %d): only root or uid %d may be one",
                        cred.uid, cred.pid, geteuid()));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ListenLocal(const std::string& run_dir, const std::string& address) {
  const std::string path = LocalSocketPath(run_dir, address);
  struct sockaddr_un sa;
  socklen_t len;
  if (!LocalName(path, &sa, &len)) {
    return absl::InvalidArgumentError("path too long for a Unix socket: " + path);
  }
  RETURN_IF_ERROR(PrepareRunDir(run_dir));
  RETURN_IF_ERROR(RemoveStaleSocket(path));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  // The directory is 0700 already; the socket is made 0600 as well.
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), len) != 0 ||
      chmod(path.c_str(), 0600) != 0 || listen(fd, 128) != 0) {
    absl::Status s = Errno("cannot listen on " + path);
    close(fd);
    return s;
  }
  return fd;
}

absl::StatusOr<int> ConnectLocal(const std::string& run_dir, const std::string& address,
                                 absl::Duration send_timeout) {
  const std::string path = LocalSocketPath(run_dir, address);
  struct sockaddr_un sa;
  socklen_t len;
  if (!LocalName(path, &sa, &len)) {
    return absl::InvalidArgumentError("path too long for a Unix socket: " + path);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Errno("socket");
  // Non-blocking, a Unix connect never waits: it fails at once when nobody
  // listens (ECONNREFUSED) or the node's backlog is full (EAGAIN).
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&sa), len) != 0) {
    absl::Status s = Errno("no local socket at " + path);
    close(fd);
    return s;
  }
  if (absl::Status s = CheckLocalPeer(fd); !s.ok()) {
    close(fd);
    return s;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  SetSendTimeout(fd, send_timeout);
  return fd;
}

std::string WithPort(const std::string& address, int port) {
  size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  return host + ":" + std::to_string(port);
}

absl::StatusOr<int> ListenTcp(const std::string& address, int* port) {
  auto res = Resolve(address, /*passive=*/true);
  if (!res.ok()) return res.status();
  int fd = socket((*res)->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(*res);
    return Errno("socket");
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc = bind(fd, (*res)->ai_addr, (*res)->ai_addrlen);
  freeaddrinfo(*res);
  if (rc != 0 || listen(fd, 128) != 0) {
    absl::Status s = Errno("cannot listen on " + address);
    close(fd);
    return s;
  }
  *port = BoundPort(fd);
  return fd;
}

absl::StatusOr<int> ConnectTcp(const std::string& address, absl::Duration timeout,
                               absl::Duration send_timeout) {
  auto res = Resolve(address, /*passive=*/false);
  if (!res.ok()) return res.status();
  int fd = socket((*res)->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    freeaddrinfo(*res);
    return Errno("socket");
  }
  int rc = connect(fd, (*res)->ai_addr, (*res)->ai_addrlen);
  freeaddrinfo(*res);
  if (rc != 0 && errno == EINPROGRESS) {
    struct pollfd p = {fd, POLLOUT, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
    do {
      rc = poll(&p, 1, ms);
    } while (rc < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof(err);
    if (rc == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (rc == 0) err = ETIMEDOUT;
    if (rc < 0) err = errno;
    rc = err == 0 ? 0 : -1;
    errno = err;
  }
  if (rc != 0) {
    absl::Status s = Errno("cannot connect to " + address);
    close(fd);
    return s;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  SetSendTimeout(fd, send_timeout);
  return fd;
}

absl::Status BufferedReader::Fill(size_t n) {
  if (end_ - pos_ >= n) return absl::OkStatus();
  if (buf_.size() - pos_ < n) {
    memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  while (end_ - pos_ < n) {
    absl::StatusOr<size_t> r = Receive(buf_.data() + end_, buf_.size() - end_);
    if (!r.ok()) return r.status();
    if (*r == 0) {
      return end_ == pos_ ? absl::OutOfRangeError("connection closed")
                          : absl::UnavailableError("connection closed mid-frame");
    }
    end_ += *r;
  }
  return absl::OkStatus();
}

absl::Status BufferedReader::Take(size_t n, char* out) {
  size_t have = std::min(n, end_ - pos_);  // buffered bytes first
  if (out != nullptr) memcpy(out, buf_.data() + pos_, have);
  pos_ += have;
  for (size_t got = have; got < n;) {
    absl::StatusOr<size_t> r;
    if (out != nullptr) {  // the rest straight into place
      r = Receive(out + got, n - got);
    } else {  // or through the buffer, to drop it
      r = Receive(buf_.data(), std::min(n - got, buf_.size()));
    }
    if (!r.ok()) return r.status();
    if (*r == 0) return absl::UnavailableError("connection closed mid-frame");
    got += *r;
  }
  return absl::OkStatus();
}

}  // namespace ukai::wire
