// LifetimeGuard: lets an object hand out callbacks (watches, timers) that may
// fire after it is destroyed. Wrapped callbacks run only while the guard is
// alive; Kill() waits for a running one and disables the rest. Call Kill()
// first thing in the owner's destructor. Thread-safe; callbacks of one guard
// run one at a time.
#ifndef UKAI_COMMON_LIFETIME_H_
#define UKAI_COMMON_LIFETIME_H_

#include <functional>
#include <memory>
#include <mutex>

namespace ukai {

class LifetimeGuard {
 public:
  LifetimeGuard() : state_(std::make_shared<State>()) {}
  ~LifetimeGuard() { Kill(); }

  std::function<void()> Wrap(std::function<void()> fn) const {
    return [st = state_, fn = std::move(fn)] {
      std::lock_guard<std::mutex> l(st->mu);
      if (st->alive) fn();
    };
  }
  void Kill() {
    std::lock_guard<std::mutex> l(state_->mu);
    state_->alive = false;
  }

 private:
  struct State {
    std::mutex mu;
    bool alive = true;
  };
  std::shared_ptr<State> state_;
};

}  // namespace ukai

#endif  // UKAI_COMMON_LIFETIME_H_
