// poll: one thread, nonblocking sockets, readiness from poll(). Every wait hands the kernel an
// array of every connection, which it scans: O(connections), not O(ready), like select, but
// without select's FD_SETSIZE ceiling: any descriptor the process may open can be watched.
// Loses to epoll when thousands of mostly idle clients are connected.
#include <poll.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/echo_connection.hpp"
#include "echod/server_model.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

// One client and where the current wait watches it (poll: its index in pollfds_). Owned by the
// loop thread.
struct Connection {
  EchoConnection echo;
  int slot = -1;
};

class PollModel final : public IServerModel {
 public:
  static void declare_options(po::options_description&) {}
  explicit PollModel(const po::variables_map&) {}

  int run(const ServerContext& ctx) noexcept override {
    try {
      return serve(ctx);
    } catch (const std::exception& e) {  // allocation failure: give up cleanly
      ctx.log->error("poll: {}", e.what());
      return ENOMEM;
    }
  }

 private:
  int serve(const ServerContext& ctx) {
    for (int fd : ctx.listen_fds) {
      acceptors_.push_back(std::make_unique<Acceptor>(fd, ctx.log));
    }
    listener_slots_.resize(acceptors_.size());

    Clock::time_point resume_accepting;  // while shedding load, listeners are muted until then
    for (;;) {
      const auto now = Clock::now();
      const bool accepting = now >= resume_accepting;
      // Level-triggered interest, rebuilt for every wait.
      clear_interest();
      const int stop_slot = arm(ctx.stop_fd, true, false);
      for (std::size_t i = 0; i < acceptors_.size(); ++i)
        listener_slots_[i] = arm(acceptors_[i]->listen_fd(), accepting, false);
      for (Connection& c : connections_)
        c.slot = arm(c.echo.fd(), c.echo.wants_read(), c.echo.wants_write());

      const int timeout_ms =
          accepting
              ? -1
              : static_cast<int>(
                    std::chrono::ceil<std::chrono::milliseconds>(resume_accepting - now).count());
      if (wait(timeout_ms) < 0) {
        if (errno == EINTR) continue;
        return log_failure(ctx, "poll");
      }
      if (readiness(stop_slot).readable) {
        connections_.clear();  // closes every client
        return 0;
      }
      // Write what is queued, then read and echo once (so a flooding client cannot starve the
      // others); close when the peer is done and all is sent.
      for (Connection& c : connections_)
        c.echo.on_ready(readiness(c.slot), scratch_, *ctx.log);
      std::erase_if(connections_, [](const Connection& c) { return !c.echo.open(); });
      // Accept last: a descriptor closed above and reused now must not inherit its readiness.
      for (std::size_t i = 0; i < acceptors_.size(); ++i) {
        if (readiness(listener_slots_[i]).readable && !accept_ready(*acceptors_[i], ctx)) {
          resume_accepting = Clock::now() + std::chrono::milliseconds(kAcceptBackoffMs);
        }
      }
    }
  }

  // Takes the pending connections (a bounded batch per wakeup). False: pause accepting.
  bool accept_ready(Acceptor& acceptor, const ServerContext& ctx) {
    return acceptor.accept_batch(kAcceptBatch, [&](Fd socket) {
      ctx.log->debug("fd {}: accepted", socket.get());
      connections_.push_back({EchoConnection(std::move(socket), ctx.high_water)});
    });
  }

  // The multiplexer: one pollfd per watched descriptor, refilled before every poll().
  void clear_interest() { pollfds_.clear(); }
  int arm(int fd, bool read, bool write) {
    const auto events = static_cast<short>((read ? POLLIN : 0) | (write ? POLLOUT : 0));
    pollfds_.push_back({events != 0 ? fd : -1, events, 0});  // poll() skips negative descriptors
    return static_cast<int>(pollfds_.size() - 1);
  }
  int wait(int timeout_ms) { return ::poll(pollfds_.data(), pollfds_.size(), timeout_ms); }
  // Errors and hang-ups count as both: the next recv() or send() reports them.
  Readiness readiness(int slot) const {
    const short revents = pollfds_[static_cast<std::size_t>(slot)].revents;
    return {(revents & (POLLIN | POLLERR | POLLHUP)) != 0,
            (revents & (POLLOUT | POLLERR | POLLHUP)) != 0};
  }

  static int log_failure(const ServerContext& ctx, const char* call) {
    int error = errno;
    ctx.log->error("{}: {}", call, std::strerror(error));
    return error;
  }

  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<int> listener_slots_;  // parallel to acceptors_
  std::vector<Connection> connections_;
  std::vector<pollfd> pollfds_;
  std::array<char, kScratchSize> scratch_{};
};

}  // namespace

ECHOD_PLUGIN(PollModel, "poll",
             "one thread, nonblocking sockets, poll() readiness (no descriptor ceiling)",
             echod::kCapConcurrent)
