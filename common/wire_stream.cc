#include "common/wire_stream.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace ukai::wire {

WirePeer WirePeer::Certified(std::string role, std::string id) {
  WirePeer p;
  p.kind_ = Kind::kCertified;
  p.name_ = absl::StrCat(role, " ", id);
  p.role_ = std::move(role);
  p.id_ = std::move(id);
  return p;
}

WirePeer WirePeer::Local(std::string id) {
  WirePeer p;
  p.kind_ = Kind::kLocal;
  p.name_ = absl::StrCat("same-host ", id);
  p.id_ = std::move(id);
  return p;
}

WireStream::~WireStream() { close(fd_); }

void WireStream::Break() { shutdown(fd_, SHUT_RDWR); }

void WireStream::SetReadTimeout(absl::Duration d) {
  if (d == read_timeout_) return;
  struct timeval tv = absl::ToTimeval(d);
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  read_timeout_ = d;
}

absl::StatusOr<size_t> WireStream::Read(char* buf, size_t n) {
  while (true) {
    ssize_t r = recv(fd_, buf, n, 0);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::DeadlineExceededError("receive: timed out");
    }
    if (errno != EINTR) return absl::UnavailableError(absl::StrCat("receive: ", strerror(errno)));
  }
}

absl::Status WireStream::WriteAll(struct iovec* iov, int iovcnt) {
  while (iovcnt > 0) {
    // sendmsg, not writev: MSG_NOSIGNAL, so a peer that went away is an
    // error here, not a SIGPIPE that kills the process.
    struct msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
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

}  // namespace ukai::wire
