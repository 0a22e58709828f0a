#include "echod/echo_connection.hpp"

#include <cstring>

#include "echod/errno_policy.hpp"

namespace echod {

bool EchoConnection::on_ready(Readiness ready, std::span<char> scratch, spdlog::logger& log,
                              Reads reads) {
  const int fd = fd_.get();
  IoStatus status = IoStatus::kWouldBlock;
  // Write first: sending what is queued may make room to read more.
  if (ready.writable) status = buffer_.flush(fd);
  while (ready.readable && status != IoStatus::kPeerGone && status != IoStatus::kError &&
         wants_read()) {
    status = buffer_.echo_once(fd, scratch);
    if (status == IoStatus::kEof) peer_done_ = true;
    if (reads == Reads::kOne || status == IoStatus::kWouldBlock) break;
  }

  if (status == IoStatus::kPeerGone || status == IoStatus::kError ||
      (peer_done_ && !buffer_.wants_write())) {
    if (status == IoStatus::kError) {
      log.warn("fd {}: {} ({})", fd, std::strerror(buffer_.error()), errno_name(buffer_.error()));
    }
    log.debug("fd {}: closed", fd);
    fd_.reset();
  }
  return open();
}

}  // namespace echod
