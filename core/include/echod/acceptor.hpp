// Accepting connections with one errno policy for all models.
#pragma once

#include <chrono>
#include <memory>
#include <utility>

#include <spdlog/logger.h>

#include "echod/fd.hpp"

namespace echod {

// Accepts from one listening socket. Keeps a spare descriptor so that when the process runs out
// of descriptors (EMFILE) it can still take the pending connection off the queue and close it,
// instead of leaving it there and waking up for it forever (muduo's and libev's remedy).
// Owned by one thread; several threads may each own an Acceptor for the same listener.
class Acceptor {
 public:
  enum class Status {
    kAccepted,    // `connection` holds a new nonblocking, close-on-exec socket
    kWouldBlock,  // the queue is empty: wait for readability of the listener
    kShed,        // out of descriptors: the pending connections were closed; back off briefly
    kFailed,      // unexpected error, already logged; back off briefly
  };
  struct Result {
    Status status;
    Fd connection;
  };

  Acceptor(int listen_fd, std::shared_ptr<spdlog::logger> log);
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Never blocks (the listener is nonblocking). Retries EINTR and aborted handshakes itself.
  Result accept() noexcept;

  // For event loops: takes up to `max` pending connections, handing each to
  // `on_accepted(Fd)`, so that a connect storm cannot starve the clients already connected.
  // Returns false after kShed or kFailed: the loop should stop accepting for kAcceptBackoffMs.
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

 private:
  void shed_pending() noexcept;

  int listen_fd_;
  Fd spare_;
  std::shared_ptr<spdlog::logger> log_;
  unsigned long shed_count_ = 0;
  static constexpr std::chrono::seconds kWarningInterval{5};
  std::chrono::steady_clock::time_point last_warning_{};  // epoch: the first shed warns
};

// Milliseconds a loop should stop accepting after kShed or kFailed, so that exhaustion does not
// become a busy loop. Reading and writing existing connections goes on meanwhile.
inline constexpr int kAcceptBackoffMs = 100;

// Connections an event loop takes per wakeup of a listener (Acceptor::accept_batch).
inline constexpr int kAcceptBatch = 128;

}  // namespace echod
