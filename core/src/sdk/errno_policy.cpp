#include "echod/errno_policy.hpp"

#include <spdlog/logger.h>

#include <cerrno>
#include <cstring>

namespace echod {

ErrnoClass classify_errno(int error) noexcept {
  switch (error) {
    case EINTR:
      return ErrnoClass::kRetry;
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return ErrnoClass::kWouldBlock;
    case ECONNRESET:
    case EPIPE:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case ENOTCONN:
      return ErrnoClass::kPeerGone;
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // firewall rejected the connection during accept
      return ErrnoClass::kConnectionAborted;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      return ErrnoClass::kOutOfDescriptors;
    default:
      return ErrnoClass::kUnexpected;
  }
}

const char* errno_name(int error) noexcept {
  const char* name = strerrorname_np(error);
  return name != nullptr ? name : "E?";
}

int log_call_failure(spdlog::logger& log, std::string_view call, int error) noexcept {
  log.error("{}: {} ({})", call, std::strerror(error), errno_name(error));
  return error;
}

}  // namespace echod
