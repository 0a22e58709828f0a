// The echo path every model shares: read what the peer sent, send it back, queue what the
// socket would not take yet, and stop reading while too much is queued (backpressure).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace echod {

// What happened on the socket.
enum class IoStatus {
  kProgress,    // bytes moved
  kWouldBlock,  // nothing to do until the socket is ready again
  kEof,         // the peer shut down its sending side (only from echo_once)
  kPeerGone,    // reset, broken pipe, ...: close the connection
  kError,       // unexpected errno, left in `error()`
};

// Bytes of one connection that were received but not yet echoed. Empty (and holding no memory)
// whenever the connection is caught up, so an idle connection costs no buffer at all; data is
// sent straight from the caller's scratch buffer and only the unsent tail is copied here.
//
// The queue is a ring that never holds more than high_water bytes and is allocated at most twice
// per backlog: first as large as the unsent tail of one read (at most a scratch buffer), then,
// if that fills, exactly high_water bytes. So a client that never reads costs the server at most
// high_water + one scratch buffer of heap (a doubling vector could hold and dirty twice that, and
// leave the smaller copies behind in a thread's malloc arena); the hostile suite's flood case
// checks the bound for every model. Owned by the thread serving the connection.
class ConnectionBuffer {
 public:
  // The most a ring may hold: twice the largest high-water mark core accepts (1 GiB), so that
  // the fields below fit 32 bits and an idle connection's record stays small.
  static constexpr std::size_t kMaxQueued = std::size_t{1} << 31;

  // `high_water` above kMaxQueued / 2 is taken as kMaxQueued / 2.
  explicit ConnectionBuffer(std::size_t high_water) noexcept
      : high_water_(static_cast<std::uint32_t>(std::min(high_water, kMaxQueued / 2))) {}
  ConnectionBuffer(const ConnectionBuffer&) = delete;
  ConnectionBuffer& operator=(const ConnectionBuffer&) = delete;
  ConnectionBuffer(ConnectionBuffer&&) noexcept = default;
  ConnectionBuffer& operator=(ConnectionBuffer&&) noexcept = default;
  ~ConnectionBuffer() = default;

  // One recv() into `scratch`, then echo it: sent directly if nothing is queued, the rest
  // queued. Call only when wants_read(). Receives at most the room left below the high-water
  // mark, so the queue never holds more than high_water bytes. `*emptied`, if given, says
  // whether the recv returned less than it asked for: the socket's receive queue was empty
  // then (bytes arriving later wake the socket again).
  IoStatus echo_once(int fd, std::span<char> scratch, bool* emptied = nullptr) noexcept;

  // Sends queued bytes until done or the socket is full. kProgress means the queue is empty.
  IoStatus flush(int fd) noexcept;

  // Reading more is allowed (queue below the high-water mark).
  [[nodiscard]] bool wants_read() const noexcept { return pending() < high_water_; }
  // Queued bytes wait for the socket to become writable.
  [[nodiscard]] bool wants_write() const noexcept { return pending() > 0; }
  [[nodiscard]] std::size_t pending() const noexcept { return pending_; }
  [[nodiscard]] int error() const noexcept { return error_; }
  // Heap bytes held for this connection (0 when caught up).
  [[nodiscard]] std::size_t reserved() const noexcept { return capacity_; }
  // Bytes received and sent on this connection so far, for the stop summary.
  [[nodiscard]] std::uint64_t bytes_received() const noexcept { return bytes_received_; }
  // Every byte received was sent or is still queued, so sent is not stored.
  [[nodiscard]] std::uint64_t bytes_sent() const noexcept { return bytes_received_ - pending_; }
  // The bytes received but not yet echoed, in order, for a lingering close at a drain's
  // deadline (straightens the ring first, hence not const).
  [[nodiscard]] std::span<const char> unsent();

 private:
  IoStatus fail(int error) noexcept;
  void enqueue(const char* data, std::size_t size);
  // Moves the pending bytes to the start of a new ring of `capacity` bytes (>= pending_).
  void reallocate(std::size_t capacity);

  // 40 bytes: every connection of the epoll, select and poll loops holds one, idle or not.
  // What a message that is echoed at once touches comes first, so that it shares the
  // connection's first cache lines with the descriptor.
  std::uint32_t pending_ = 0;  // unsent bytes from head_, wrapping at capacity_
  std::uint32_t high_water_;
  std::uint64_t bytes_received_ = 0;  // bytes taken into the echo (sent or queued)
  std::unique_ptr<char[]> ring_;      // capacity_ bytes; null when nothing is pending
  std::uint32_t capacity_ = 0;        // at most kMaxQueued
  std::uint32_t head_ = 0;            // index in ring_ of the oldest unsent byte
  int error_ = 0;
};

// The size of a scratch buffer for echo_once: large enough that one recv drains a typical
// socket receive queue.
inline constexpr std::size_t kScratchSize = 64 * 1024;

}  // namespace echod
