#include "echod/acceptor.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
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
        shed_one();
        return {Status::kShed, Fd()};
      default:
        log_->error("accept: {} ({})", std::strerror(error), errno_name(error));
        return {Status::kFailed, Fd()};
    }
  }
}

// Frees the spare descriptor, takes one pending connection with it and closes that at once, so
// the peer sees a close instead of waiting in the queue, then re-arms the spare.
void Acceptor::shed_one() noexcept {
  if (shed_count_++ % 1000 == 0) {
    log_->warn("out of file descriptors: closing new connections (shed so far: {})", shed_count_);
  }
  spare_.reset();
  int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) ::close(fd);
  spare_ = open_spare();
}

}  // namespace echod
