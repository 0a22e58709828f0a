// The per-connection loop of the blocking models (iterative, thread, fork, prefork, prethread):
// one thread of control serves one connection from accept to close.
#pragma once

#include <cstddef>
#include <memory>

#include <spdlog/logger.h>

#include "echod/fd.hpp"

namespace echod {

enum class ServeEnd {
  kClosedByPeer,  // EOF after everything was echoed, or the peer reset
  kStopped,       // a stop was requested
  kFailed,        // unexpected error, logged
};

// Echoes on `connection` until the peer closes, a stop is requested or an error occurs, then
// closes it. After the peer's EOF, finishes sending what is queued before closing (half-close).
// Waits in poll() on the socket and stop_fd, so a stop is seen at once even while idle.
// Uses a stack scratch buffer; the connection's queue obeys `high_water`.
ServeEnd serve_blocking(Fd connection, int stop_fd, std::size_t high_water,
                        spdlog::logger& log) noexcept;

}  // namespace echod
