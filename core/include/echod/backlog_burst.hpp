// Logging for models that stop accepting at a cap (fork, thread): clients arriving at the cap
// wait in the listen backlog, and a burst of them is logged at its start and its end rather
// than once per connection.
#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include <spdlog/logger.h>

#include "echod/acceptor.hpp"

namespace echod {

// One burst lasts from a client seen waiting at the cap until the backlog is found empty.
// Owned by the accepting thread.
class BacklogBurst {
 public:
  // `servers` names what the cap counts ("children"), `limit_key` the option that sets it.
  BacklogBurst(std::string servers, std::string limit_key)
      : servers_(std::move(servers)), limit_key_(std::move(limit_key)) {}
  BacklogBurst(const BacklogBurst&) = delete;
  BacklogBurst& operator=(const BacklogBurst&) = delete;

  // True during a burst: the listener need not be watched while at the cap, and a freed slot
  // should try the backlog at once to learn whether it is empty.
  [[nodiscard]] bool active() const noexcept { return active_; }

  // All `cap` servers are busy and a client waits: starts a burst (logged once).
  void at_cap(std::size_t cap, spdlog::logger& log);
  // acceptor.accept(), keeping the burst's account: counts a connection taken during it, and
  // ends it (logged) when the backlog is found empty (kWouldBlock).
  Acceptor::Result accept(Acceptor& acceptor, spdlog::logger& log);

 private:
  std::string servers_;
  std::string limit_key_;
  bool active_ = false;
  unsigned long waited_ = 0;  // connections accepted during the burst
};

}  // namespace echod
