// One client connection of a readiness loop (epoll, poll, select): what to do when the wait
// says its socket is ready, and what to wait for next.
#pragma once

#include <cstddef>
#include <span>

#include <spdlog/logger.h>

#include "echod/acceptor.hpp"
#include "echod/connection_buffer.hpp"
#include "echod/endpoint.hpp"

namespace echod {

// What a wait reported for one socket. Errors and hang-ups should count as both: the next
// recv() or send() reports them.
struct Readiness {
  bool readable;
  bool writable;
  // The peer's FIN (EPOLLRDHUP), a hang-up or an error was reported. The connection remembers
  // it: under kUntilDrained a short read is from then on no sign of an empty queue, since the
  // FIN behind the data sends no new edge.
  bool peer_closing = false;
};

// How much to read on one readable wakeup.
enum class Reads {
  kOne,           // one recv: a flooding client cannot starve the others (level-triggered)
  kUntilDrained,  // EPOLLET, where an edge is seen once: until the receive queue is empty (a
                  // recv returns less than asked, as nginx reads it, or EAGAIN), the high-water
                  // mark or kReadBudget (a connection cut short by the budget is served again
                  // without waiting: see more_to_read())
};

// Reads per wakeup under Reads::kUntilDrained: 16 x 64 KiB, so that one client that keeps
// its receive queue full cannot starve the rest.
inline constexpr int kReadBudget = 16;

// A nonblocking socket, its place under the endpoint's caps, the bytes received on it not yet
// echoed, and whether the peer has shut down its sending side. Owned by the loop thread. Not
// movable (idle lists link to it, and its byte counts are added up once, when it is destroyed):
// loops keep it behind a pointer.
class EchoConnection {
 public:
  EchoConnection(Accepted accepted, std::size_t high_water, Endpoint& endpoint) noexcept
      : fd_(std::move(accepted.socket)),
        buffer_(high_water),
        admission_(std::move(accepted.admission)),
        endpoint_(endpoint) {}
  EchoConnection(const EchoConnection&) = delete;
  EchoConnection& operator=(const EchoConnection&) = delete;
  ~EchoConnection() { endpoint_.count_bytes(buffer_.bytes_received(), buffer_.bytes_sent()); }

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  // False once on_ready() closed it.
  [[nodiscard]] bool open() const noexcept { return fd_.valid(); }

  // Interest for the next level-triggered wait: read unless the peer is done or too much is
  // queued (backpressure); write while something is queued.
  [[nodiscard]] bool wants_read() const noexcept { return !peer_done_ && buffer_.wants_read(); }
  [[nodiscard]] bool wants_write() const noexcept { return buffer_.wants_write(); }
  // Under Reads::kUntilDrained: the last on_ready() stopped at kReadBudget, so more may be
  // waiting although no new edge will say so.
  [[nodiscard]] bool more_to_read() const noexcept { return more_to_read_; }

  // Writes what is queued if writable, then reads and echoes if readable; closes the socket
  // when the peer is gone, on an unexpected error (warned) or when the peer is done and all is
  // sent (each close logged at debug). Returns open().
  bool on_ready(Readiness ready, std::span<char> scratch, spdlog::logger& log,
                Reads reads = Reads::kOne);

  // The idle timeout: closes the connection unless it still has bytes to echo (then it is not
  // idle: returns false). Counted in the stop summary.
  bool close_if_idle(spdlog::logger& log);

  // At a stop: hands the socket and its unsent bytes to `finisher` (a lingering close at a
  // drain's deadline, a plain close otherwise).
  void finish(Finisher& finisher);

 private:
  // 72 bytes, in this order: the flags share the descriptor's word, what every message touches
  // comes first (descriptor, flags, the buffer's counters), what only a close needs last.
  Fd fd_;
  bool peer_done_ = false;     // the peer shut down its sending side (its EOF was read)
  bool peer_closing_ = false;  // a wait reported its FIN (or a hang-up) before the EOF was read
  bool more_to_read_ = false;
  ConnectionBuffer buffer_;
  Admission admission_;
  Endpoint& endpoint_;
};

}  // namespace echod
