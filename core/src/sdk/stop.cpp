#include "echod/stop.hpp"

#include <poll.h>

#include <cerrno>

namespace echod {

bool stop_requested(int stop_fd) noexcept {
  pollfd pfd{stop_fd, POLLIN, 0};
  while (::poll(&pfd, 1, 0) < 0 && errno == EINTR) {
  }
  return (pfd.revents & (POLLIN | POLLHUP)) != 0;
}

bool wait_ready(int fd, short events, int stop_fd, int timeout_ms) noexcept {
  pollfd pfds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
  for (;;) {
    int n = ::poll(pfds, 2, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (pfds[1].revents != 0) return false;
    // Errors and hang-ups count as ready: the next call on fd reports them.
    return pfds[0].revents != 0;
  }
}

bool sleep_unless_stopped(int stop_fd, int ms) noexcept {
  pollfd pfd{stop_fd, POLLIN, 0};
  while (::poll(&pfd, 1, ms) < 0 && errno == EINTR) {
  }
  return pfd.revents == 0;
}

}  // namespace echod
