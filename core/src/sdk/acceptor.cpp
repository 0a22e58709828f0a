#include "echod/acceptor.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "echod/errno_policy.hpp"

namespace echod {
namespace {

Fd open_spare() noexcept {
  return Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

}  // namespace

Acceptor::Acceptor(int listen_fd, std::shared_ptr<spdlog::logger> log)
    : listen_fd_(listen_fd), spare_(open_spare()), log_(std::move(log)) {}

Acceptor::Result Acceptor::accept() noexcept {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return {Status::kAccepted, Fd(fd)};
    int error = errno;
    switch (classify_errno(error)) {
      case ErrnoClass::kRetry:
      case ErrnoClass::kConnectionAborted:
        continue;
      case ErrnoClass::kWouldBlock:
        return {Status::kWouldBlock, Fd()};
      case ErrnoClass::kOutOfDescriptors:
        shed_pending();
        return {Status::kShed, Fd()};
      default:
        log_->error("accept: {} ({})", std::strerror(error), errno_name(error));
        return {Status::kFailed, Fd()};
    }
  }
}

// Frees the spare descriptor and uses it to take every connection waiting in the queue and
// close it at once, so those peers see a close now instead of waiting in the queue for a
// descriptor that may not come; then re-arms the spare. Bounded, so a connect flood cannot keep
// the loop here.
void Acceptor::shed_pending() noexcept {
  constexpr int kMaxShedPerCall = 1024;
  spare_.reset();
  int shed = 0;
  while (shed < kMaxShedPerCall) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;
    }
    ::close(fd);
    ++shed;
  }
  spare_ = open_spare();
  shed_count_ += static_cast<unsigned long>(shed);
  // Once per burst: a flood must not turn into a flood of log lines.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warning_ >= kWarningInterval) {
    last_warning_ = now;
    log_->warn("out of file descriptors: closing new connections at once (shed so far: {})",
               shed_count_);
  }
}

}  // namespace echod
