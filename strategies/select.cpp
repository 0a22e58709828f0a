// select: one thread, nonblocking sockets, readiness from select(). Every wait rebuilds two
// bitmaps and the kernel scans every descriptor up to the highest: O(connections), not
// O(ready). A descriptor >= FD_SETSIZE (1024) cannot be watched at all, so such connections are
// refused. Loses to poll and epoll past a few hundred clients; cannot serve a thousand.
#include <sys/select.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/echo_connection.hpp"
#include "echod/select_limits.hpp"
#include "echod/server_model.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

struct Options {
  // FD_SETSIZE less room for stdio, stop_fd, the listeners and the acceptors' spare descriptors.
  int max_clients = FD_SETSIZE - 16;
};

// One client and where the current wait watches it (select: the descriptor itself). Owned by the
// loop thread.
struct Connection {
  EchoConnection echo;
  int slot = -1;
};

class SelectModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("select.max-clients", po::value<int>()->default_value(defaults.max_clients),
         "clients served at once (1-FD_SETSIZE); later connections are closed on accept");
    // clang-format on
  }

  explicit SelectModel(const po::variables_map& settings)
      : options_{settings["select.max-clients"].as<int>()},
        admission_(static_cast<std::size_t>(options_.max_clients), "select.max-clients") {
    if (options_.max_clients < 1 || options_.max_clients > FD_SETSIZE) {
      throw std::invalid_argument("select.max-clients must be between 1 and " +
                                  std::to_string(FD_SETSIZE) + " (FD_SETSIZE)");
    }
  }

  int run(const ServerContext& ctx) noexcept override {
    try {
      return serve(ctx);
    } catch (const std::exception& e) {  // allocation failure: give up cleanly
      ctx.log->error("select: {}", e.what());
      return ENOMEM;
    }
  }

 private:
  int serve(const ServerContext& ctx) {
    std::vector<int> fixed_fds(ctx.listen_fds.begin(), ctx.listen_fds.end());
    fixed_fds.push_back(ctx.stop_fd);
    if (const int error = check_fd_set_room(fixed_fds, "select", *ctx.log)) return error;
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
        return log_failure(ctx, "select");
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

  // Takes the pending connections (a bounded batch per wakeup) that select() can watch and
  // select.max-clients allows; refused ones close at once. False: pause accepting.
  bool accept_ready(Acceptor& acceptor, const ServerContext& ctx) {
    return acceptor.accept_batch(kAcceptBatch, [&](Fd socket) {
      if (!admission_.admit(socket.get(), connections_.size(), *ctx.log)) return;
      ctx.log->debug("fd {}: accepted", socket.get());
      connections_.push_back({EchoConnection(std::move(socket), ctx.high_water)});
    });
  }

  // The multiplexer: two bitmaps indexed by descriptor, refilled before every select().
  void clear_interest() {
    FD_ZERO(&read_set_);
    FD_ZERO(&write_set_);
    max_fd_ = -1;
  }
  int arm(int fd, bool read, bool write) {
    if (read) FD_SET(fd, &read_set_);
    if (write) FD_SET(fd, &write_set_);
    if (read || write) max_fd_ = std::max(max_fd_, fd);
    return fd;
  }
  int wait(int timeout_ms) {
    timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return ::select(max_fd_ + 1, &read_set_, &write_set_, nullptr,
                    timeout_ms < 0 ? nullptr : &timeout);
  }
  Readiness readiness(int slot) const {
    return {FD_ISSET(slot, &read_set_) != 0, FD_ISSET(slot, &write_set_) != 0};
  }

  static int log_failure(const ServerContext& ctx, const char* call) {
    int error = errno;
    ctx.log->error("{}: {}", call, std::strerror(error));
    return error;
  }

  Options options_;
  SelectAdmission admission_;  // FD_SETSIZE and select.max-clients
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<int> listener_slots_;  // parallel to acceptors_
  std::vector<Connection> connections_;
  fd_set read_set_{};
  fd_set write_set_{};
  int max_fd_ = -1;
  std::array<char, kScratchSize> scratch_{};
};

}  // namespace

ECHOD_PLUGIN(SelectModel, "select",
             "one thread, nonblocking sockets, select() readiness (descriptors < FD_SETSIZE)",
             echod::kCapConcurrent)
