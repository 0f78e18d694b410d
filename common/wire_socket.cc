#include "common/wire_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

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

// Fills `sa` with the abstract name for `address`; false if it does not fit.
bool LocalName(const std::string& address, struct sockaddr_un* sa, socklen_t* len) {
  std::string name = std::string(1, '\0') + "ukai-io/" + address;
  if (name.size() > sizeof(sa->sun_path)) return false;
  *sa = {};
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, name.data(), name.size());
  *len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + name.size());
  return true;
}

void SetSendTimeout(int fd, absl::Duration send_timeout) {
  struct timeval tv = absl::ToTimeval(send_timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

}  // namespace

absl::StatusOr<int> ListenLocal(const std::string& address) {
  struct sockaddr_un sa;
  socklen_t len;
  if (!LocalName(address, &sa, &len)) {
    return absl::InvalidArgumentError("address too long for a local socket: " + address);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), len) != 0 || listen(fd, 128) != 0) {
    absl::Status s = Errno("cannot listen on the local socket for " + address);
    close(fd);
    return s;
  }
  return fd;
}

absl::StatusOr<int> ConnectLocal(const std::string& address, absl::Duration send_timeout) {
  struct sockaddr_un sa;
  socklen_t len;
  if (!LocalName(address, &sa, &len)) {
    return absl::InvalidArgumentError("address too long for a local socket: " + address);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Errno("socket");
  // Non-blocking, a Unix connect never waits: it fails at once when nobody
  // listens (ECONNREFUSED) or the node's backlog is full (EAGAIN).
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&sa), len) != 0) {
    absl::Status s = Errno("no local socket for " + address);
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

absl::Status WriteAll(int fd, struct iovec* iov, int iovcnt) {
  while (iovcnt > 0) {
    // sendmsg, not writev: MSG_NOSIGNAL, so a peer that went away is an
    // error here, not a SIGPIPE that kills the process.
    struct msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("send");
    }
    while (iovcnt > 0 && static_cast<size_t>(n) >= iov->iov_len) {
      n -= static_cast<ssize_t>(iov->iov_len);
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + n;
      iov->iov_len -= static_cast<size_t>(n);
    }
  }
  return absl::OkStatus();
}

absl::Status BufferedReader::Fill(size_t n) {
  if (end_ - pos_ >= n) return absl::OkStatus();
  if (buf_.size() - pos_ < n) {
    memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  while (end_ - pos_ < n) {
    ssize_t r = recv(fd_, buf_.data() + end_, buf_.size() - end_, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Errno("receive");
    if (r == 0) {
      return end_ == pos_ ? absl::OutOfRangeError("connection closed")
                          : absl::UnavailableError("connection closed mid-frame");
    }
    end_ += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::Status BufferedReader::Take(size_t n, char* out) {
  size_t have = std::min(n, end_ - pos_);  // buffered bytes first
  if (out != nullptr) memcpy(out, buf_.data() + pos_, have);
  pos_ += have;
  for (size_t got = have; got < n;) {
    ssize_t r;
    if (out != nullptr) {  // the rest straight into place
      r = recv(fd_, out + got, n - got, 0);
    } else {  // or through the buffer, to drop it
      r = recv(fd_, buf_.data(), std::min(n - got, buf_.size()), 0);
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Errno("receive");
    if (r == 0) return absl::UnavailableError("connection closed mid-frame");
    got += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

}  // namespace ukai::wire
