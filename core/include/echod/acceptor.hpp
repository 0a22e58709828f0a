// Accepting connections with one errno policy for all models.
#pragma once

#include <memory>

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
    kShed,        // out of descriptors: one pending connection was closed; back off briefly
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

  [[nodiscard]] int listen_fd() const noexcept { return listen_fd_; }

 private:
  void shed_one() noexcept;

  int listen_fd_;
  Fd spare_;
  std::shared_ptr<spdlog::logger> log_;
  unsigned long shed_count_ = 0;
};

// Milliseconds a loop should stop accepting after kShed or kFailed, so that exhaustion does not
// become a busy loop. Reading and writing existing connections goes on meanwhile.
inline constexpr int kAcceptBackoffMs = 100;

}  // namespace echod
