#include "echod/blocking_echo.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "echod/connection_buffer.hpp"
#include "echod/errno_policy.hpp"

namespace echod {

ServeEnd serve_blocking(Fd connection, int stop_fd, std::size_t high_water,
                        spdlog::logger& log) noexcept {
  const int fd = connection.get();
  ConnectionBuffer buffer(high_water);
  std::array<char, kScratchSize> scratch;  // NOLINT: filled by recv before use
  bool peer_done = false;

  for (;;) {
    if (peer_done && !buffer.wants_write()) {
      log.debug("fd {}: peer closed, echo complete", fd);
      return ServeEnd::kClosedByPeer;
    }
    short events = 0;
    if (!peer_done && buffer.wants_read()) events |= POLLIN;
    if (buffer.wants_write()) events |= POLLOUT;
    pollfd pfds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log.error("poll: {}", std::strerror(errno));
      return ServeEnd::kFailed;
    }
    if (pfds[1].revents != 0) return ServeEnd::kStopped;

    IoStatus status = IoStatus::kWouldBlock;
    if (pfds[0].revents & (POLLOUT | POLLERR | POLLHUP)) status = buffer.flush(fd);
    if (status != IoStatus::kPeerGone && status != IoStatus::kError && !peer_done &&
        buffer.wants_read() && (pfds[0].revents & (POLLIN | POLLERR | POLLHUP))) {
      status = buffer.echo_once(fd, scratch);
      if (status == IoStatus::kEof) peer_done = true;
    }
    if (status == IoStatus::kPeerGone) {
      log.debug("fd {}: peer gone ({})", fd, errno_name(buffer.error()));
      return ServeEnd::kClosedByPeer;
    }
    if (status == IoStatus::kError) {
      log.warn("fd {}: {} ({})", fd, std::strerror(buffer.error()), errno_name(buffer.error()));
      return ServeEnd::kFailed;
    }
  }
}

}  // namespace echod
