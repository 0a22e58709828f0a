#include "report/error_counts.hpp"

#include <cerrno>
#include <cstring>
#include <numeric>

namespace echod::bench {

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kRefused:
      return "refused";
    case ErrorKind::kConnectTimeout:
      return "connect_timeout";
    case ErrorKind::kConnectFailed:
      return "connect_failed";
    case ErrorKind::kReset:
      return "reset";
    case ErrorKind::kClosedByPeer:
      return "closed_by_peer";
    case ErrorKind::kReplyTimeout:
      return "reply_timeout";
    case ErrorKind::kMismatch:
      return "mismatch";
    case ErrorKind::kOther:
      return "other";
  }
  return "unknown";
}

ErrorKind classify_connect_errno(int error) {
  switch (error) {
    case ECONNREFUSED:
      return ErrorKind::kRefused;
    case ETIMEDOUT:
      return ErrorKind::kConnectTimeout;
    default:
      return ErrorKind::kConnectFailed;
  }
}

ErrorKind classify_io_errno(int error) {
  switch (error) {
    case ECONNRESET:
    case EPIPE:
      return ErrorKind::kReset;
    case ETIMEDOUT:
      return ErrorKind::kReplyTimeout;
    default:
      return ErrorKind::kOther;
  }
}

std::string errno_name(int error) {
  if (const char* name = ::strerrorname_np(error)) return name;
  return "E" + std::to_string(error);
}

void ErrorCounts::add(ErrorKind kind, int error) {
  ++by_kind[static_cast<std::size_t>(kind)];
  if (error != 0) ++by_errno[errno_name(error)];
}

void ErrorCounts::merge(const ErrorCounts& other) {
  for (std::size_t i = 0; i < kErrorKindCount; ++i)
    by_kind[i] += other.by_kind[i];
  for (const auto& [name, count] : other.by_errno)
    by_errno[name] += count;
  if (!first_mismatch) first_mismatch = other.first_mismatch;
}

std::uint64_t ErrorCounts::total() const {
  return std::accumulate(by_kind.begin(), by_kind.end(), std::uint64_t{0});
}

}  // namespace echod::bench
