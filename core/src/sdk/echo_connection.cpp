#include "echod/echo_connection.hpp"

#include <cstring>

#include "echod/errno_policy.hpp"

namespace echod {

bool EchoConnection::on_ready(Readiness ready, std::span<char> scratch, spdlog::logger& log,
                              Reads reads) {
  const int fd = fd_.get();
  IoStatus status = IoStatus::kWouldBlock;
  more_to_read_ = false;
  if (ready.peer_closing) peer_closing_ = true;
  // Write first: sending what is queued may make room to read more.
  if (ready.writable) status = buffer_.flush(fd);
  for (int budget = reads == Reads::kOne ? 1 : kReadBudget;
       ready.readable && status != IoStatus::kPeerGone && status != IoStatus::kError &&
       wants_read();) {
    bool emptied = false;
    status = buffer_.echo_once(fd, scratch, &emptied);
    if (status == IoStatus::kEof) peer_done_ = true;
    if (status == IoStatus::kWouldBlock || status == IoStatus::kEof) break;
    // Saves the recv that would only say EAGAIN: one syscall per message instead of two.
    if (emptied && !peer_closing_) break;
    if (--budget == 0) {
      more_to_read_ = reads == Reads::kUntilDrained && status == IoStatus::kProgress;
      break;
    }
  }

  if (status == IoStatus::kPeerGone || status == IoStatus::kError ||
      (peer_done_ && !buffer_.wants_write())) {
    if (status == IoStatus::kError) {
      log.warn("fd {}: {} ({})", fd, std::strerror(buffer_.error()), errno_name(buffer_.error()));
    }
    if (status == IoStatus::kPeerGone || status == IoStatus::kError) admission_.mark_failed();
    log.debug("fd {}: closed", fd);
    fd_.reset();
    admission_.release();
    more_to_read_ = false;
  }
  return open();
}

bool EchoConnection::close_if_idle(spdlog::logger& log) {
  if (!fd_.valid()) return true;  // closed already, by the peer
  if (buffer_.wants_write()) return false;
  log.debug("fd {}: closed after {} s idle", fd_.get(),
            std::chrono::duration<double>(endpoint_.limits().idle_timeout).count());
  endpoint_.count_idle_close();
  fd_.reset();
  admission_.release();
  return true;
}

void EchoConnection::finish(Finisher& finisher) {
  if (!fd_.valid()) return;
  finisher.add(std::move(fd_), buffer_.unsent());
  admission_.release();
}

}  // namespace echod
