#include "echod/stop.hpp"

#include <poll.h>
#include <time.h>

#include <cerrno>

#include "echod/acceptor.hpp"  // kAcceptBackoffMs

namespace echod {
namespace {

void sleep_ms(int ms) noexcept {
  timespec left{ms / 1000, static_cast<long>(ms % 1000) * 1'000'000L};
  while (::nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

}  // namespace

bool stop_requested(int stop_fd) noexcept {
  pollfd pfd{stop_fd, POLLIN, 0};
  while (::poll(&pfd, 1, 0) < 0 && errno == EINTR) {
  }
  return (pfd.revents & (POLLIN | POLLHUP)) != 0;
}

Wait wait_ready(int fd, short events, int stop_fd, int timeout_ms) noexcept {
  pollfd pfds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
  for (;;) {
    const int n = ::poll(pfds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      sleep_ms(kAcceptBackoffMs);
      return Wait::kFailed;
    }
    if (n == 0) return Wait::kTimeout;
    if (pfds[1].revents != 0) return Wait::kStopped;
    return Wait::kReady;
  }
}

bool sleep_unless_stopped(int stop_fd, int ms) noexcept {
  for (;;) {
    pollfd pfd{stop_fd, POLLIN, 0};
    const int n = ::poll(&pfd, 1, ms);
    if (n > 0) return false;
    if (n == 0) return true;
    if (errno == EINTR) continue;
    // poll() failed (ENOMEM): sleep without it, then look once more.
    sleep_ms(ms >= 0 ? ms : kAcceptBackoffMs);
    if (stop_requested(stop_fd)) return false;
    if (ms >= 0) return true;
  }
}

}  // namespace echod
