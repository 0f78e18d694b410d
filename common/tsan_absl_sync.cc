// ThreadSanitizer builds only (UKAI_TSAN): makes Debian's Abseil locks
// visible to TSan. libabsl_synchronization is not built with TSan, so TSan
// cannot see that absl::Mutex, CondVar and Notification order the threads
// that use them, and would report every field guarded by one as a race.
//
// This file defines the locking entry points in the executable, where they
// take precedence over the shared library's (ELF symbol interposition): each
// calls the library's own function (found with dlsym(RTLD_NEXT)) and tells
// TSan what it did: a lock acquires the mutex's address, an unlock releases
// it, a wait does both. Deadlock and lock-order checks are not covered;
// data races on what the locks guard are.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace {

// The library's definition of the symbol `mangled`; aborts if there is none.
template <typename Fn>
Fn Real(const char* mangled) {
  void* p = dlsym(RTLD_NEXT, mangled);
  if (p == nullptr) {
    fprintf(stderr, "tsan_absl_sync: no %s in the loaded libraries\n", mangled);
    abort();
  }
  Fn fn;
  static_assert(sizeof(fn) == sizeof(p));
  __builtin_memcpy(&fn, &p, sizeof(p));
  return fn;
}

void* Addr(const void* p) { return const_cast<void*>(p); }

// Notification's flag sits right after its mutex (notification.h); its
// inline HasBeenNotified() does an acquire load of it, instrumented.
void* FlagOf(const absl::Notification* n) {
  static_assert(sizeof(absl::Notification) == sizeof(absl::Mutex) + sizeof(intptr_t));
  return Addr(reinterpret_cast<const char*>(n) + sizeof(absl::Mutex));
}

// A waiter's condition is evaluated under the mutex, inside the library:
// by the waiter, or by the thread unlocking on its behalf. TSan sees the
// waiter's own acquire only once the wait returns, so each evaluation is
// wrapped in an acquire and a release of the mutex of its own.
struct Guarded {
  const absl::Condition* cond;
  absl::Mutex* mu;
  static bool Eval(Guarded* g) {
    __tsan_acquire(g->mu);
    const bool met = g->cond->Eval();
    __tsan_release(g->mu);
    return met;
  }
};

using Void = void (*)(absl::Mutex*);
using Bool = bool (*)(absl::Mutex*);
using When = void (*)(absl::Mutex*, const absl::Condition&);
using AwaitFn = void (*)(absl::Mutex*, const absl::Condition&);
using AwaitT = bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration);
using AwaitD = bool (*)(absl::Mutex*, const absl::Condition&, absl::Time);

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static auto real = Real<Void>("_ZN4absl7debian35Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}
void Mutex::ReaderLock() {
  static auto real = Real<Void>("_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}
bool Mutex::TryLock() {
  static auto real = Real<Bool>("_ZN4absl7debian35Mutex7TryLockEv");
  const bool got = real(this);
  if (got) __tsan_acquire(this);
  return got;
}
bool Mutex::ReaderTryLock() {
  static auto real = Real<Bool>("_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool got = real(this);
  if (got) __tsan_acquire(this);
  return got;
}
void Mutex::Unlock() {
  static auto real = Real<Void>("_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}
void Mutex::ReaderUnlock() {
  static auto real = Real<Void>("_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}
void Mutex::LockWhen(const Condition& cond) {
  static auto real = Real<When>("_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Guarded g{&cond, this};
  real(this, Condition(&Guarded::Eval, &g));
  __tsan_acquire(this);
}
void Mutex::Await(const Condition& cond) {
  static auto real = Real<AwaitFn>("_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Guarded g{&cond, this};
  __tsan_release(this);
  real(this, Condition(&Guarded::Eval, &g));
  __tsan_acquire(this);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto real =
      Real<AwaitT>("_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Guarded g{&cond, this};
  __tsan_release(this);
  const bool met = real(this, Condition(&Guarded::Eval, &g), timeout);
  __tsan_acquire(this);
  return met;
}
bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static auto real =
      Real<AwaitD>("_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Guarded g{&cond, this};
  __tsan_release(this);
  const bool met = real(this, Condition(&Guarded::Eval, &g), deadline);
  __tsan_acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  static auto real = Real<void (*)(CondVar*, Mutex*)>("_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool timed_out = real(this, mu, timeout);
  __tsan_acquire(mu);
  return timed_out;
}
bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool timed_out = real(this, mu, deadline);
  __tsan_acquire(mu);
  return timed_out;
}

void Notification::Notify() {
  static auto real = Real<void (*)(Notification*)>("_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(FlagOf(this));
  real(this);
}
void Notification::WaitForNotification() const {
  static auto real =
      Real<void (*)(const Notification*)>("_ZNK4absl7debian312Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(FlagOf(this));
}
bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static auto real = Real<bool (*)(const Notification*, Duration)>(
      "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(FlagOf(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
