// Helpers around ServerContext::stop_fd and drain_fd.
#pragma once

#include <poll.h>  // POLLIN, POLLOUT for wait_ready

namespace echod {

// True once `fd` (stop_fd or drain_fd) has become readable. Never blocks.
[[nodiscard]] bool stop_requested(int stop_fd) noexcept;

enum class Wait {
  kReady,    // fd is ready (errors and hang-ups count as ready: the next call reports them)
  kStopped,  // stop_fd became readable
  kTimeout,  // timeout_ms passed
  kFailed,   // poll() itself failed (ENOMEM); it has already slept a back-off, so no caller spins
};

// Waits until fd is ready for `events` (POLLIN/POLLOUT), stop_fd becomes readable, or
// timeout_ms passes (-1: no timeout). stop_fd may be -1 (none).
[[nodiscard]] Wait wait_ready(int fd, short events, int stop_fd, int timeout_ms = -1) noexcept;

// Sleeps for `ms` (-1: until stopped) unless stop_fd becomes readable first. Returns false if
// stopped. Never returns early on a poll() failure: it then sleeps without it.
bool sleep_unless_stopped(int stop_fd, int ms) noexcept;

}  // namespace echod
