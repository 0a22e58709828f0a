// The idle timeout of an event loop: its connections in the order they were last active, so
// the loop finds every idle one by looking at the front only (libuv's timer list and nginx's
// keepalive queue do the same). Activity is O(1) (unlink, append); a wakeup costs O(expired),
// however many connections sit idle behind the front.
#pragma once

#include <chrono>

namespace echod {

// Owned by the loop thread, like the connections it orders.
class IdleList {
 public:
  using Clock = std::chrono::steady_clock;

  // Embedded in a connection; unlinks itself when destroyed. Not movable: its address is what
  // the list links, so connections holding one live behind a pointer.
  class Hook {
   public:
    Hook() noexcept = default;
    Hook(const Hook&) = delete;
    Hook& operator=(const Hook&) = delete;
    ~Hook() { unlink(); }
    [[nodiscard]] Clock::time_point last_active() const noexcept { return last_active_; }

   private:
    friend class IdleList;
    void unlink() noexcept {
      if (next_ == nullptr) return;
      prev_->next_ = next_;
      next_->prev_ = prev_;
      prev_ = next_ = nullptr;
    }
    Hook* prev_ = nullptr;
    Hook* next_ = nullptr;  // nullptr: not in a list
    Clock::time_point last_active_{};
  };

  // A zero timeout turns the list off: touch() and expire() do nothing.
  explicit IdleList(std::chrono::milliseconds timeout) noexcept : timeout_(timeout) {
    sentinel_.prev_ = sentinel_.next_ = &sentinel_;
  }
  IdleList(const IdleList&) = delete;
  IdleList& operator=(const IdleList&) = delete;
  ~IdleList() {
    while (sentinel_.next_ != &sentinel_)
      sentinel_.next_->unlink();
  }

  [[nodiscard]] bool enabled() const noexcept { return timeout_.count() > 0; }
  [[nodiscard]] std::chrono::milliseconds timeout() const noexcept { return timeout_; }

  // The connection was active at `now`: it moves to the back.
  void touch(Hook& hook, Clock::time_point now) noexcept {
    if (!enabled()) return;
    hook.unlink();
    hook.last_active_ = now;
    hook.prev_ = sentinel_.prev_;
    hook.next_ = &sentinel_;
    sentinel_.prev_->next_ = &hook;
    sentinel_.prev_ = &hook;
  }

  // Calls on_idle(hook) for every connection idle for the whole timeout, oldest first.
  // on_idle closes it (and may destroy the hook) and returns true, or returns false to keep it
  // (it still has bytes to echo: not idle), which counts as activity now.
  template <typename OnIdle>
  void expire(Clock::time_point now, OnIdle&& on_idle) {
    if (!enabled()) return;
    while (sentinel_.next_ != &sentinel_ && now - sentinel_.next_->last_active_ >= timeout_) {
      Hook& oldest = *sentinel_.next_;
      oldest.unlink();  // before on_idle, which may destroy it
      if (!on_idle(oldest)) touch(oldest, now);
    }
  }

  // Milliseconds until the front connection would be idle (rounded up); -1 if none is waiting.
  [[nodiscard]] int wait_ms(Clock::time_point now) const noexcept {
    if (!enabled() || sentinel_.next_ == &sentinel_) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(sentinel_.next_->last_active_ +
                                                                   timeout_ - now);
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
  }

 private:
  std::chrono::milliseconds timeout_;
  Hook sentinel_;  // circular: front is sentinel_.next_, back is sentinel_.prev_
};

// The shorter of two poll-style timeouts, where -1 means none.
[[nodiscard]] inline int earliest_timeout(int a, int b) noexcept {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

}  // namespace echod
