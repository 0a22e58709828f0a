// Accepting connections with one errno policy and one admission policy for all models.
#pragma once

#include <chrono>
#include <memory>
#include <utility>

#include <spdlog/logger.h>

#include "echod/endpoint.hpp"
#include "echod/fd.hpp"

namespace echod {

struct ServerContext;

// A new client: its nonblocking, close-on-exec socket and its place under the endpoint's caps,
// released when the Admission is destroyed. Keep both for as long as the connection lives.
struct Accepted {
  Fd socket;
  Admission admission;

  [[nodiscard]] int fd() const noexcept { return socket.get(); }
  explicit operator bool() const noexcept { return socket.valid(); }
};

// Accepts from one listening socket. Every connection is admitted by the Endpoint first: one
// past a cap is closed at once (counted and warned by the Endpoint) and the next is taken, so a
// model never sees it. Keeps a spare descriptor so that when the process runs out of
// descriptors (EMFILE) it can still take the pending connections off the queue and close them,
// instead of waking up for them forever (muduo's and libev's remedy).
// Owned by one thread; several threads may each own an Acceptor for the same listener.
class Acceptor {
 public:
  enum class Status {
    kAccepted,    // `connection` holds a new admitted connection
    kWouldBlock,  // the queue is empty: wait for readability of the listener
    kShed,        // out of descriptors: the pending connections were closed; back off briefly
    kFailed,      // unexpected error (logged, at most every few seconds); back off briefly
    kClosed,      // the listener was shut down (a drain began): accept no more
  };
  struct Result {
    Status status;
    Accepted connection;
  };

  // Uses ctx.log and ctx.endpoint.
  Acceptor(int listen_fd, const ServerContext& ctx);
  Acceptor(int listen_fd, std::shared_ptr<spdlog::logger> log, Endpoint& endpoint);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Never blocks (the listener is nonblocking). Retries EINTR and aborted handshakes itself,
  // a bounded number of times, so that no errno can keep it here.
  Result accept() noexcept;

  // For event loops: takes up to `max` pending connections, handing each to
  // `on_accepted(Accepted)`, so that a connect storm cannot starve the clients already
  // connected. Returns false after kShed, kFailed or kClosed: the loop should stop accepting
  // for kAcceptBackoffMs (for good after kClosed; see closed()).
  template <class OnAccepted>
  bool accept_batch(int max, OnAccepted&& on_accepted) {
    for (int taken = 0; taken < max; ++taken) {
      auto [status, connection] = accept();
      if (status == Status::kWouldBlock) return true;
      if (status != Status::kAccepted) return false;
      on_accepted(std::move(connection));
    }
    return true;
  }

  [[nodiscard]] int listen_fd() const noexcept { return listen_fd_; }
  // True once accept() returned kClosed.
  [[nodiscard]] bool closed() const noexcept { return closed_; }

 private:
  void shed_pending() noexcept;
  void log_failure(int error) noexcept;

  int listen_fd_;
  Fd spare_;
  std::shared_ptr<spdlog::logger> log_;
  Endpoint& endpoint_;
  bool closed_ = false;
  unsigned long shed_count_ = 0;
  unsigned long failure_count_ = 0;
  static constexpr std::chrono::seconds kWarningInterval{5};
  std::chrono::steady_clock::time_point last_warning_{};  // epoch: the first shed warns
  std::chrono::steady_clock::time_point last_failure_log_{};
};

// Milliseconds a loop should stop accepting after kShed or kFailed, so that exhaustion does not
// become a busy loop. Reading and writing existing connections goes on meanwhile.
inline constexpr int kAcceptBackoffMs = 100;

// Connections an event loop takes per wakeup of a listener (Acceptor::accept_batch).
inline constexpr int kAcceptBatch = 128;

}  // namespace echod
