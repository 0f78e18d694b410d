#include "common/io_ring.h"

#include <errno.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "common/log.h"

namespace ukai {

struct IoRing::Op {
  // One per range: what a completion's user_data points at.
  struct Slot {
    Op* op;
    size_t index;
  };
  std::unique_ptr<DiskReads> reads;
  Callback done;
  std::vector<Slot> slots;
  size_t pending = 0;  // ranges not finished yet
};

struct IoRing::Impl {
  io_uring ring;
  bool ring_made = false;
  int wake_fd = -1;  // an eventfd: Read's way to wake a waiting thread
  uint64_t wake_buf = 0;
  size_t in_flight = 0;  // ops submitted, callback not run yet (the thread's own)

  ~Impl() {
    if (ring_made) io_uring_queue_exit(&ring);
    if (wake_fd >= 0) close(wake_fd);
  }
  // An SQE, submitting what is queued if the ring is full.
  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    while (sqe == nullptr) {
      io_uring_submit(&ring);
      sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
  }
  void ArmWake() {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_read(sqe, wake_fd, &wake_buf, sizeof(wake_buf), 0);
    io_uring_sqe_set_data(sqe, nullptr);
  }
  // Queues the rest of range `s.index` of its op.
  void Prep(Op::Slot* s) {
    DiskReads::Range& r = s->op->reads->ranges[s->index];
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_read(sqe, r.fd, r.buf + r.done, r.len - r.done, r.offset + r.done);
    io_uring_sqe_set_data(sqe, s);
  }
};

IoRing::IoRing() : impl_(std::make_unique<Impl>()) {}

absl::StatusOr<std::unique_ptr<IoRing>> IoRing::Start(unsigned depth) {
  std::unique_ptr<IoRing> r(new IoRing());
  Impl& im = *r->impl_;
  im.wake_fd = eventfd(0, EFD_CLOEXEC);
  if (im.wake_fd < 0) {
    return absl::UnavailableError(absl::StrFormat("eventfd: %s", strerror(errno)));
  }
  // COOP_TASKRUN: completions wait for the ring's thread to enter the kernel
  // instead of interrupting it; it does so at once, to wait or to reply.
  io_uring_params p = {};
  p.flags = IORING_SETUP_COOP_TASKRUN;
  int rc = io_uring_queue_init_params(depth, &im.ring, &p);
  if (rc == -EINVAL) {  // before Linux 5.19
    p = {};
    rc = io_uring_queue_init_params(depth, &im.ring, &p);
  }
  if (rc < 0) return absl::UnavailableError(absl::StrFormat("io_uring: %s", strerror(-rc)));
  im.ring_made = true;
  im.ArmWake();
  r->thread_ = std::thread([p = r.get()] { p->Loop(); });
  return r;
}

IoRing::~IoRing() {
  if (!thread_.joinable()) return;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  (void)!write(impl_->wake_fd, &one, sizeof(one));
  thread_.join();
}

void IoRing::Read(std::unique_ptr<DiskReads> reads, Callback done) {
  auto* op = new Op{std::move(reads), std::move(done), {}, 0};
  bool wake;
  {
    absl::MutexLock l(&mu_);
    queue_.push_back(op);
    wake = idle_;
    idle_ = false;
  }
  if (wake) {
    uint64_t one = 1;
    (void)!write(impl_->wake_fd, &one, sizeof(one));
  }
}

void IoRing::Loop() {
  Impl& im = *impl_;
  std::vector<Op*> batch, ready;  // reused: no allocation per round
  auto finish = [&im](Op* op) {
    op->done(*op->reads);
    delete op;
    --im.in_flight;
  };
  while (true) {
    batch.clear();
    bool wait;
    {
      absl::MutexLock l(&mu_);
      batch.swap(queue_);
      if (batch.empty() && stopping_ && im.in_flight == 0) return;
      wait = batch.empty();
      idle_ = wait;
    }
    for (Op* op : batch) {
      ++im.in_flight;
      op->slots.reserve(op->reads->ranges.size());
      for (size_t i = 0; i < op->reads->ranges.size(); ++i) {
        if (op->reads->ranges[i].len == 0) continue;
        op->slots.push_back({op, i});
      }
      op->pending = op->slots.size();
      if (op->pending == 0) {
        finish(op);
        continue;
      }
      for (auto& s : op->slots) im.Prep(&s);
    }
    int rc = io_uring_submit_and_wait(&im.ring, wait ? 1 : 0);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      LOG_ERROR("io_uring_submit: %s", strerror(-rc));
    }
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    ready.clear();
    io_uring_for_each_cqe(&im.ring, head, cqe) {
      ++seen;
      auto* s = static_cast<Op::Slot*>(io_uring_cqe_get_data(cqe));
      if (s == nullptr) {  // the wake-up read: arm it again
        im.ArmWake();
        continue;
      }
      DiskReads::Range& r = s->op->reads->ranges[s->index];
      const int res = cqe->res;
      if (res == -EINTR || res == -EAGAIN) {
        im.Prep(s);
        continue;
      }
      if (res < 0) {
        r.error = -res;
      } else {
        r.done += static_cast<uint32_t>(res);
        if (res > 0 && r.done < r.len) {  // short: read the rest
          im.Prep(s);
          continue;
        }
      }
      if (--s->op->pending == 0) ready.push_back(s->op);
    }
    io_uring_cq_advance(&im.ring, seen);
    for (Op* op : ready) finish(op);
  }
}

}  // namespace ukai
