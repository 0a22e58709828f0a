// Errors split by kind, and by errno where the kernel gave one, so a run that failed says how.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace echod::bench {

enum class ErrorKind : std::uint8_t {
  kRefused,         // connect: ECONNREFUSED (nothing listening)
  kConnectTimeout,  // connect: no answer within --connect-timeout
  kConnectFailed,   // connect: any other errno (EADDRNOTAVAIL, ENETUNREACH, EMFILE, ...)
  kReset,           // established: ECONNRESET or EPIPE
  kClosedByPeer,    // established: the server closed (EOF) while the connection was in use
  kReplyTimeout,    // established: an echo did not come back within --timeout
  kMismatch,        // an echoed byte differs from the one sent, or more came back than was sent
  kOther,           // established: any other errno
};
inline constexpr std::size_t kErrorKindCount = 8;

// The JSON/table name of a kind: "refused", "connect_timeout", ...
std::string_view error_kind_name(ErrorKind kind);
ErrorKind classify_connect_errno(int error);
ErrorKind classify_io_errno(int error);
// "ECONNRESET" etc.; "E123" for numbers glibc does not name.
std::string errno_name(int error);

// Where the first wrong byte was seen, to make a corrupting server easy to debug.
struct MismatchDetail {
  std::uint64_t connection = 0;     // global connection number
  std::uint64_t stream_offset = 0;  // byte offset in that connection's echo stream
  int expected = -1;                // byte value sent; -1 when nothing more had been sent
  int received = 0;
};

// Owned by one worker thread; merged by the runner after the threads join.
struct ErrorCounts {
  std::array<std::uint64_t, kErrorKindCount> by_kind{};
  std::map<std::string, std::uint64_t> by_errno;
  std::optional<MismatchDetail> first_mismatch;

  // `error` is the errno behind it, or 0 when there is none (EOF, a byte mismatch).
  void add(ErrorKind kind, int error);
  void merge(const ErrorCounts& other);
  [[nodiscard]] std::uint64_t total() const;
  [[nodiscard]] std::uint64_t count(ErrorKind kind) const {
    return by_kind[static_cast<std::size_t>(kind)];
  }
};

}  // namespace echod::bench
