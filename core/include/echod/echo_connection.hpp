// One client connection of a readiness loop (epoll, poll, select): what to do when the wait
// says its socket is ready, and what to wait for next.
#pragma once

#include <cstddef>
#include <span>

#include <spdlog/logger.h>

#include "echod/connection_buffer.hpp"
#include "echod/fd.hpp"

namespace echod {

// What a wait reported for one socket. Errors and hang-ups should count as both: the next
// recv() or send() reports them.
struct Readiness {
  bool readable;
  bool writable;
};

// How much to read on one readable wakeup.
enum class Reads {
  kOne,              // one recv: a flooding client cannot starve the others (level-triggered)
  kUntilWouldBlock,  // until EAGAIN or the high-water mark: an edge is seen once (EPOLLET)
};

// A nonblocking socket, the bytes received on it not yet echoed, and whether the peer has shut
// down its sending side. Owned by the loop thread; movable, so loops may keep them in vectors.
class EchoConnection {
 public:
  EchoConnection(Fd socket, std::size_t high_water) noexcept
      : fd_(std::move(socket)), buffer_(high_water) {}
  EchoConnection(const EchoConnection&) = delete;
  EchoConnection& operator=(const EchoConnection&) = delete;
  EchoConnection(EchoConnection&&) noexcept = default;
  EchoConnection& operator=(EchoConnection&&) noexcept = default;
  ~EchoConnection() = default;

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  // False once on_ready() closed it.
  [[nodiscard]] bool open() const noexcept { return fd_.valid(); }

  // Interest for the next level-triggered wait: read unless the peer is done or too much is
  // queued (backpressure); write while something is queued.
  [[nodiscard]] bool wants_read() const noexcept { return !peer_done_ && buffer_.wants_read(); }
  [[nodiscard]] bool wants_write() const noexcept { return buffer_.wants_write(); }

  // Writes what is queued if writable, then reads and echoes if readable; closes the socket
  // when the peer is gone, on an unexpected error (warned) or when the peer is done and all is
  // sent (each close logged at debug). Returns open().
  bool on_ready(Readiness ready, std::span<char> scratch, spdlog::logger& log,
                Reads reads = Reads::kOne);

 private:
  Fd fd_;
  ConnectionBuffer buffer_;
  bool peer_done_ = false;  // the peer shut down its sending side
};

}  // namespace echod
