// The epoll event loop: one thread, nonblocking sockets, readiness from epoll, the idle list,
// accept back-off and the two-step stop. Model epoll is this loop on core's listeners; each
// worker of model reuseport runs it on its own listener. One loop per calling thread.
#pragma once

#include <string>

#include <boost/program_options.hpp>

namespace echod {

struct ServerContext;

struct EpollLoopOptions {
  // EPOLLET: read each socket until its queue is empty (at most 16 reads per wakeup) instead
  // of once.
  bool edge_triggered = false;
  int max_events = 256;  // events taken from the kernel per epoll_wait
};

// Declares "<model>.edge-triggered" and "<model>.max-events" with the defaults above.
void declare_epoll_loop_options(boost::program_options::options_description& options,
                                const std::string& model);
[[nodiscard]] EpollLoopOptions read_epoll_loop_options(
    const boost::program_options::variables_map& settings, const std::string& model);

// Accepts on every one of ctx.listen_fds and echoes on the calling thread until the drain has
// no connection left or stop_fd is readable (then every connection is finished through a
// Finisher). Returns 0, or an errno value after logging why serving failed (ENOMEM when an
// allocation outside a connection failed).
int run_epoll_loop(const ServerContext& ctx, const EpollLoopOptions& options) noexcept;

}  // namespace echod
