// Helpers around ServerContext::stop_fd.
#pragma once

#include <poll.h>  // POLLIN, POLLOUT for wait_ready

namespace echod {

// True once a stop has been requested. Never blocks.
[[nodiscard]] bool stop_requested(int stop_fd) noexcept;

// Waits until fd is ready for `events` (POLLIN/POLLOUT) or a stop is requested, or timeout_ms
// passes (-1: no timeout). Returns true if fd is ready, false on stop or timeout.
[[nodiscard]] bool wait_ready(int fd, short events, int stop_fd, int timeout_ms = -1) noexcept;

// Sleeps for `ms` unless a stop is requested first. Returns false if stopped.
bool sleep_unless_stopped(int stop_fd, int ms) noexcept;

}  // namespace echod
