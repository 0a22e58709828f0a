#include "echod/select_limits.hpp"

#include <cerrno>

namespace echod {

int check_fd_set_room(std::span<const int> fds, std::string_view model,
                      spdlog::logger& log) noexcept {
  for (int fd : fds) {
    if (fd >= FD_SETSIZE) {
      log.error("{}: descriptor {} >= FD_SETSIZE ({}): select() cannot watch it", model, fd,
                FD_SETSIZE);
      return EINVAL;
    }
  }
  return 0;
}

bool SelectAdmission::admit(int fd, std::size_t clients, spdlog::logger& log) noexcept {
  const bool fits = fd < FD_SETSIZE;
  if (fits && clients < max_clients_) return true;
  ++refused_;
  if (const auto now = std::chrono::steady_clock::now(); now >= next_warning_) {
    next_warning_ = now + std::chrono::seconds(1);
    if (!fits) {
      log.warn("refusing connection: fd {} >= FD_SETSIZE ({}) (refused so far: {})", fd, FD_SETSIZE,
               refused_);
    } else {
      log.warn("refusing connection: {} clients already ({}) (refused so far: {})", clients,
               limit_key_, refused_);
    }
  }
  return false;
}

}  // namespace echod
