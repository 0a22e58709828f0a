// select()'s descriptor ceiling: FD_SET on a descriptor >= FD_SETSIZE writes beyond the fd_set
// (fortified glibc aborts), so select() loops must refuse what they cannot watch.
#pragma once

#include <sys/select.h>

#include <chrono>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/logger.h>

namespace echod {

// For start-up: 0 if select() can watch every one of `fds` (core opens the listeners and
// stop_fd early, so they are small); otherwise logs "<model>: descriptor N >= FD_SETSIZE" and
// returns EINVAL.
[[nodiscard]] int check_fd_set_room(std::span<const int> fds, std::string_view model,
                                    spdlog::logger& log) noexcept;

// Decides whether a new connection may join a select() loop: its descriptor must fit an fd_set,
// and the loop may cap its clients. A refused connection is the caller's to close at once. A
// burst of refusals logs one warning a second, not one per connection. Owned by the loop thread.
class SelectAdmission {
 public:
  // Only the FD_SETSIZE ceiling.
  SelectAdmission() = default;
  // Also at most `max_clients` at once; `limit_key` is the option that set it, for the warning.
  SelectAdmission(std::size_t max_clients, std::string limit_key)
      : max_clients_(max_clients), limit_key_(std::move(limit_key)) {}
  SelectAdmission(const SelectAdmission&) = delete;
  SelectAdmission& operator=(const SelectAdmission&) = delete;

  // True if the connection on `fd` may join the `clients` already served.
  [[nodiscard]] bool admit(int fd, std::size_t clients, spdlog::logger& log) noexcept;

 private:
  std::size_t max_clients_ = std::numeric_limits<std::size_t>::max();
  std::string limit_key_;
  unsigned long refused_ = 0;
  std::chrono::steady_clock::time_point next_warning_{};  // epoch: the first refusal warns
};

}  // namespace echod
