#include "echod/acceptor.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "echod/errno_policy.hpp"
#include "echod/server_model.hpp"

namespace echod {
namespace {

Fd open_spare() noexcept {
  return Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

// Aborted handshakes and refused connections taken in one accept() call at most, so that a
// flood of them returns to the loop (which serves the others) instead of keeping it here.
constexpr int kMaxSkippedPerCall = 256;

// Every Acceptor of the process takes this around accept4(), and shed_pending() around its whole
// close-spare, accept, close, reopen-spare sequence: threads share one descriptor table, so
// without it another thread's accept can take the slot the spare just freed, the spare cannot be
// reopened, and that Acceptor can never shed again (reuseport's worker threads each have an
// Acceptor and showed it). Uncontended, it costs a few nanoseconds per accepted connection.
std::mutex descriptor_slot_mutex;

}  // namespace

Acceptor::Acceptor(int listen_fd, const ServerContext& ctx)
    : Acceptor(listen_fd, ctx.log, *ctx.endpoint) {}

Acceptor::Acceptor(int listen_fd, std::shared_ptr<spdlog::logger> log, Endpoint& endpoint)
    : listen_fd_(listen_fd), spare_(open_spare()), log_(std::move(log)), endpoint_(endpoint) {}

Acceptor::Result Acceptor::accept() noexcept {
  for (int skipped = 0; skipped < kMaxSkippedPerCall;) {
    sockaddr_storage peer{};
    socklen_t peer_size = sizeof peer;
    int fd;
    {
      std::lock_guard slot(descriptor_slot_mutex);
      fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_size,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    if (fd >= 0) {
      Fd socket(fd);
      Admission admission = endpoint_.admit(fd, peer, peer_size);
      if (admission.valid()) return {Status::kAccepted, {std::move(socket), std::move(admission)}};
      ++skipped;  // refused by a cap: `socket` closes now, take the next one
      continue;
    }
    const int error = errno;
    if (error == EINVAL) {  // shut down by core when a drain begins
      closed_ = true;
      return {Status::kClosed, {}};
    }
    if (error == EPERM) {  // a firewall or LSM refused it; it may refuse the next one too
      log_failure(error);
      return {Status::kFailed, {}};
    }
    switch (classify_errno(error)) {
      case ErrnoClass::kRetry:
      case ErrnoClass::kConnectionAborted:
        ++skipped;
        continue;
      case ErrnoClass::kWouldBlock:
        return {Status::kWouldBlock, {}};
      case ErrnoClass::kOutOfDescriptors:
        shed_pending();
        return {Status::kShed, {}};
      default:
        log_failure(error);
        return {Status::kFailed, {}};
    }
  }
  return {Status::kWouldBlock, {}};  // more may wait: the listener stays readable
}

// A failing accept is retried after a back-off by every loop; one line per interval, not per try.
void Acceptor::log_failure(int error) noexcept {
  ++failure_count_;
  const auto now = std::chrono::steady_clock::now();
  if (failure_count_ > 1 && now - last_failure_log_ < kWarningInterval) return;
  last_failure_log_ = now;
  log_->error("accept: {} ({}); backing off (failures so far: {})", std::strerror(error),
              errno_name(error), failure_count_);
}

// Frees the spare descriptor and uses it to take every connection waiting in the queue and
// close it at once, so those peers see a close now instead of waiting in the queue for a
// descriptor that may not come; then re-arms the spare. Bounded, so a connect flood cannot keep
// the loop here.
void Acceptor::shed_pending() noexcept {
  constexpr int kMaxShedPerCall = 1024;
  std::unique_lock slot(descriptor_slot_mutex);
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
  slot.unlock();
  shed_count_ += static_cast<unsigned long>(shed);
  endpoint_.count_shed(static_cast<std::uint64_t>(shed));
  // Once per burst: a flood must not turn into a flood of log lines.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warning_ >= kWarningInterval) {
    last_warning_ = now;
    log_->warn("out of file descriptors: closing new connections at once (shed so far: {})",
               shed_count_);
  }
}

}  // namespace echod
