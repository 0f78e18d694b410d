// CallbackThread: runs posted callbacks one at a time, in order, on its own
// thread. MetaStores deliver watches through one so that a watch callback
// never runs inside a store lock or on ZooKeeper's completion thread (where a
// synchronous ZooKeeper call would deadlock). Thread-safe.
#ifndef UKAI_META_CALLBACK_THREAD_H_
#define UKAI_META_CALLBACK_THREAD_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace ukai::meta {

class CallbackThread {
 public:
  CallbackThread() : thread_([this] { Loop(); }) {}
  // Runs what was posted before, then joins.
  ~CallbackThread() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  // Returns once everything posted before the call has run.
  void Drain() {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    Post([&] {
      std::lock_guard<std::mutex> l(m);
      done = true;
      cv.notify_one();
    });
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return done; });
  }
  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> l(mu_);
      q_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [this] { return done_ || !q_.empty(); });
      if (q_.empty()) return;
      auto fn = std::move(q_.front());
      q_.pop_front();
      l.unlock();
      fn();
      l.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the fields it uses exist
};

}  // namespace ukai::meta

#endif  // UKAI_META_CALLBACK_THREAD_H_
