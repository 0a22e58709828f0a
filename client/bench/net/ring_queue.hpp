// A FIFO in one growable power-of-two ring. Why not std::deque: libstdc++'s deque allocates a
// map and a 512-byte node per instance and frees and allocates nodes as a ping-pong walks through
// them; with a thousand connections each touching its own node per message, that is a cache
// miss and an allocation every few messages. A ring keeps each connection's few in-flight
// messages in one small block that is reused forever.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace echod::bench {

// Owned by whoever owns its elements (here: one Connection, on one worker thread).
template <typename T>
class RingQueue {
 public:
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  void push_back(T value) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(value);
    ++size_;
  }
  void pop_front() noexcept {
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
  }
  void clear() noexcept { head_ = size_ = 0; }

  // Index 0 is the oldest element.
  [[nodiscard]] T& operator[](std::size_t i) noexcept {
    return slots_[(head_ + i) & (slots_.size() - 1)];
  }
  [[nodiscard]] const T& operator[](std::size_t i) const noexcept {
    return slots_[(head_ + i) & (slots_.size() - 1)];
  }
  [[nodiscard]] T& front() noexcept { return (*this)[0]; }
  [[nodiscard]] const T& front() const noexcept { return (*this)[0]; }

  // Calls f(element) oldest first.
  template <typename F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < size_; ++i)
      f((*this)[i]);
  }

 private:
  void grow() {
    std::vector<T> larger(slots_.empty() ? 4 : slots_.size() * 2);
    for (std::size_t i = 0; i < size_; ++i)
      larger[i] = std::move((*this)[i]);
    slots_ = std::move(larger);
    head_ = 0;
  }

  std::vector<T> slots_;  // size is 0 or a power of two
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace echod::bench
