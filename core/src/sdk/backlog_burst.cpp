#include "echod/backlog_burst.hpp"

namespace echod {

void BacklogBurst::at_cap(std::size_t cap, spdlog::logger& log) {
  if (active_) return;
  log.info("all {} {} busy ({}): new clients wait in the listen backlog", cap, servers_,
           limit_key_);
  active_ = true;
}

Acceptor::Result BacklogBurst::accept(Acceptor& acceptor, spdlog::logger& log) {
  Acceptor::Result result = acceptor.accept();
  if (result.status == Acceptor::Status::kAccepted && active_) {
    ++waited_;
  } else if (result.status == Acceptor::Status::kWouldBlock) {
    if (active_) log.info("no client waits any more ({} taken from the backlog)", waited_);
    active_ = false;
    waited_ = 0;
  }
  return result;
}

}  // namespace echod
