// One classification of errno for every model, so that every loop reacts to the same failure
// the same way.
#pragma once

#include <string_view>

namespace spdlog {
class logger;
}

namespace echod {

enum class ErrnoClass {
  kRetry,              // EINTR: repeat the call now
  kWouldBlock,         // EAGAIN/EWOULDBLOCK: wait for readiness
  kPeerGone,           // ECONNRESET, EPIPE, ETIMEDOUT, ...: close this connection (debug log)
  kConnectionAborted,  // ECONNABORTED, EPROTO, ...: accept's peer left before we took it; next
  kOutOfDescriptors,   // EMFILE, ENFILE, ENOBUFS, ENOMEM: shed load without spinning
  kUnexpected,         // anything else: log the failing call by name
};

[[nodiscard]] ErrnoClass classify_errno(int error) noexcept;

// "recv: Connection reset by peer (ECONNRESET)" style text for logs.
[[nodiscard]] const char* errno_name(int error) noexcept;

// Logs "CALL: reason (ENAME)" at error level and returns `error`: for a loop whose set-up or wait
// failed, so that run() returns that errno.
int log_call_failure(spdlog::logger& log, std::string_view call, int error) noexcept;

}  // namespace echod
