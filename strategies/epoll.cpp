// epoll: one thread, nonblocking sockets, readiness from epoll. Each wakeup costs O(ready
// descriptors), not O(connections), so tens of thousands of mostly idle clients are cheap.
// Level-triggered by default; epoll.edge-triggered=true reads each socket until EAGAIN instead.
// Loses when per-message work is heavy: everything runs on one core.
#include <sys/epoll.h>

#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/echo_connection.hpp"
#include "echod/errno_policy.hpp"
#include "echod/server_model.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;

struct Options {
  bool edge_triggered = false;
  int max_events = 256;
};

// One client and what epoll watches on it. Owned by the loop thread.
struct Connection {
  EchoConnection echo;
  std::uint32_t interest;  // events registered with epoll (level-triggered mode)
};

class EpollModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("epoll.edge-triggered", po::value<bool>()->default_value(defaults.edge_triggered, defaults.edge_triggered ? "true" : "false"),
         "edge-triggered (EPOLLET): drain each socket until EAGAIN on every wakeup")
        ("epoll.max-events", po::value<int>()->default_value(defaults.max_events),
         "events taken from the kernel per epoll_wait (1-65536)");
    // clang-format on
  }

  explicit EpollModel(const po::variables_map& settings)
      : options_{settings["epoll.edge-triggered"].as<bool>(),
                 settings["epoll.max-events"].as<int>()} {
    if (options_.max_events < 1 || options_.max_events > 65536) {
      throw std::invalid_argument("epoll.max-events must be between 1 and 65536");
    }
  }

  int run(const ServerContext& ctx) noexcept override {
    try {
      return serve(ctx);
    } catch (const std::exception& e) {  // allocation failure: give up cleanly
      ctx.log->error("epoll: {}", e.what());
      return ENOMEM;
    }
  }

 private:
  int serve(const ServerContext& ctx) {
    epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return log_call_failure(*ctx.log, "epoll_create1", errno);
    if (!watch(ctx.stop_fd, EPOLLIN)) return log_call_failure(*ctx.log, "epoll_ctl(stop)", errno);
    for (int fd : ctx.listen_fds) {
      acceptors_.push_back(std::make_unique<Acceptor>(fd, ctx.log));
      if (!watch(fd, EPOLLIN)) return log_call_failure(*ctx.log, "epoll_ctl(listener)", errno);
    }

    std::vector<epoll_event> events(static_cast<std::size_t>(options_.max_events));
    int accept_pause_ms = -1;  // while shedding load, listeners are muted for a while
    for (;;) {
      int ready = ::epoll_wait(epoll_.get(), events.data(), options_.max_events, accept_pause_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        return log_call_failure(*ctx.log, "epoll_wait", errno);
      }
      if (ready == 0 && accept_pause_ms >= 0) {  // the pause is over: listen again
        for (auto& acceptor : acceptors_)
          modify(acceptor->listen_fd(), EPOLLIN);
        accept_pause_ms = -1;
      }
      for (int i = 0; i < ready; ++i) {
        const int fd = events[static_cast<std::size_t>(i)].data.fd;
        const std::uint32_t revents = events[static_cast<std::size_t>(i)].events;
        if (fd == ctx.stop_fd) {
          connections_.clear();  // closes every client
          return 0;
        }
        if (Acceptor* acceptor = acceptor_for(fd)) {
          if (!accept_ready(*acceptor, ctx)) {
            for (auto& a : acceptors_)
              modify(a->listen_fd(), 0);
            accept_pause_ms = kAcceptBackoffMs;
          }
        } else {
          on_ready(fd, revents, ctx);
        }
      }
    }
  }

  // Takes the pending connections (a bounded batch per wakeup). False: pause accepting.
  bool accept_ready(Acceptor& acceptor, const ServerContext& ctx) {
    return acceptor.accept_batch(kAcceptBatch, [&](Fd socket) {
      const int fd = socket.get();
      // Edge-triggered: register everything once and never modify (the usual EPOLLET idiom).
      const std::uint32_t interest =
          options_.edge_triggered ? EPOLLIN | EPOLLOUT | EPOLLET : EPOLLIN;
      if (!watch(fd, interest)) {
        ctx.log->warn("epoll_ctl(add fd {}): {}", fd, std::strerror(errno));
        return;  // the connection closes as `socket` goes out of scope
      }
      ctx.log->debug("fd {}: accepted", fd);
      if (static_cast<std::size_t>(fd) >= connections_.size()) {
        connections_.resize(static_cast<std::size_t>(fd) + 1);
      }
      connections_[static_cast<std::size_t>(fd)] = std::make_unique<Connection>(
          Connection{EchoConnection(std::move(socket), ctx.high_water), interest});
    });
  }

  // Write what is queued, then read and echo; close when the peer is done and all is sent.
  void on_ready(int fd, std::uint32_t revents, const ServerContext& ctx) {
    auto& slot = connections_[static_cast<std::size_t>(fd)];
    // Level-triggered: one read per wakeup keeps a flooding client from starving the others.
    // Edge-triggered: the edge is gone once seen, so read until EAGAIN on every event (or the
    // high-water mark; the EPOLLOUT edge that follows draining brings us back to read the rest).
    const Readiness ready{options_.edge_triggered || (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)),
                          (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0};
    if (!slot->echo.on_ready(ready, scratch_, *ctx.log,
                             options_.edge_triggered ? Reads::kUntilWouldBlock : Reads::kOne)) {
      slot.reset();  // closed; the kernel dropped it from the epoll set
      return;
    }
    if (!options_.edge_triggered) {
      const std::uint32_t wanted =
          (slot->echo.wants_read() ? EPOLLIN : 0u) | (slot->echo.wants_write() ? EPOLLOUT : 0u);
      if (wanted != slot->interest) {
        slot->interest = wanted;
        modify(fd, wanted);
      }
    }
  }

  bool watch(int fd, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) == 0;
  }
  void modify(int fd, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event);
  }
  Acceptor* acceptor_for(int fd) {
    for (auto& acceptor : acceptors_) {
      if (acceptor->listen_fd() == fd) return acceptor.get();
    }
    return nullptr;
  }
  Options options_;
  Fd epoll_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<std::unique_ptr<Connection>> connections_;  // indexed by descriptor
  std::array<char, kScratchSize> scratch_{};
};

}  // namespace

ECHOD_PLUGIN(EpollModel, "epoll",
             "one thread, nonblocking sockets, epoll readiness (level- or edge-triggered)",
             echod::kCapConcurrent)
