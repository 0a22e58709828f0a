#include "echod/blocking_echo.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "echod/connection_buffer.hpp"
#include "echod/errno_policy.hpp"
#include "echod/server_model.hpp"

namespace echod {

ServeEnd serve_blocking(Accepted connection, const ServerContext& ctx) noexcept {
  return serve_blocking(std::move(connection), ctx, ctx.stop_fd);
}

namespace {

// Serves `connection` until it ends; marks its admission failed when it ends on an I/O error.
ServeEnd serve(Accepted& connection, ConnectionBuffer& buffer, const ServerContext& ctx,
               int stop_fd) {
  Fd& socket = connection.socket;
  using Clock = std::chrono::steady_clock;
  const int fd = socket.get();
  spdlog::logger& log = *ctx.log;
  const auto idle_timeout = ctx.endpoint->limits().idle_timeout;
  std::array<char, kScratchSize> scratch;  // NOLINT: filled by recv before use
  bool peer_done = false;
  auto last_active = Clock::now();

  for (;;) {
    if (peer_done && !buffer.wants_write()) {
      log.debug("fd {}: peer closed, echo complete", fd);
      return ServeEnd::kClosedByPeer;
    }
    short events = 0;
    if (!peer_done && buffer.wants_read()) events |= POLLIN;
    if (buffer.wants_write()) events |= POLLOUT;
    int timeout_ms = -1;
    if (idle_timeout.count() > 0) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(last_active + idle_timeout - Clock::now());
      timeout_ms = static_cast<int>(std::max<long long>(left.count(), 0));
    }
    pollfd pfds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const int ready = ::poll(pfds, 2, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      log.error("poll: {}", std::strerror(errno));
      return ServeEnd::kFailed;
    }
    if (pfds[1].revents != 0) {
      Finisher finisher(*ctx.endpoint);
      finisher.add(std::move(socket), buffer.unsent());
      finisher.run();
      return ServeEnd::kStopped;
    }
    if (ready == 0) {              // the idle timeout passed with nothing from the peer
      if (buffer.wants_write()) {  // still echoing to a slow reader: not idle
        last_active = Clock::now();
        continue;
      }
      log.debug("fd {}: closed after {} s idle", fd,
                std::chrono::duration<double>(idle_timeout).count());
      ctx.endpoint->count_idle_close();
      return ServeEnd::kIdle;
    }
    last_active = Clock::now();

    IoStatus status = IoStatus::kWouldBlock;
    if (pfds[0].revents & (POLLOUT | POLLERR | POLLHUP)) status = buffer.flush(fd);
    if (status != IoStatus::kPeerGone && status != IoStatus::kError && !peer_done &&
        buffer.wants_read() && (pfds[0].revents & (POLLIN | POLLERR | POLLHUP))) {
      status = buffer.echo_once(fd, scratch);
      if (status == IoStatus::kEof) peer_done = true;
    }
    if (status == IoStatus::kPeerGone) {
      log.debug("fd {}: peer gone ({})", fd, errno_name(buffer.error()));
      connection.admission.mark_failed();
      return ServeEnd::kPeerGone;
    }
    if (status == IoStatus::kError) {
      log.warn("fd {}: {} ({})", fd, std::strerror(buffer.error()), errno_name(buffer.error()));
      connection.admission.mark_failed();
      return ServeEnd::kFailed;
    }
  }
}

}  // namespace

ServeEnd serve_blocking(Accepted connection, const ServerContext& ctx, int stop_fd) noexcept {
  ConnectionBuffer buffer(ctx.high_water);
  const ServeEnd end = serve(connection, buffer, ctx, stop_fd);
  ctx.endpoint->count_bytes(buffer.bytes_received(), buffer.bytes_sent());
  return end;
}

}  // namespace echod
