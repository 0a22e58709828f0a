#include "echod/epoll_loop.hpp"

#include <sys/epoll.h>

#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/echo_connection.hpp"
#include "echod/errno_policy.hpp"
#include "echod/idle_list.hpp"
#include "echod/options.hpp"
#include "echod/server_model.hpp"
#include "plain_syscalls.hpp"

namespace echod {
namespace {

namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

// One client, what epoll watches on it, and its place in the idle list. Owned by the loop.
// 104 bytes (a 112-byte heap chunk), the fields each message touches in its first 56.
struct Connection : IdleList::Hook {
  Connection(Accepted accepted, const ServerContext& ctx, std::uint32_t watched)
      : interest(watched), echo(std::move(accepted), ctx.high_water, *ctx.endpoint) {}
  std::uint32_t interest;  // events registered with epoll (level-triggered mode)
  bool queued = false;     // in more_to_read_ (edge-triggered: its read budget ran out)
  EchoConnection echo;
};

// One loop on the calling thread. Not copyable; owned by that thread.
class EpollLoop {
 public:
  explicit EpollLoop(const EpollLoopOptions& options) : options_(options) {}
  EpollLoop(const EpollLoop&) = delete;
  EpollLoop& operator=(const EpollLoop&) = delete;

  int serve(const ServerContext& ctx) {
    epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return log_call_failure(*ctx.log, "epoll_create1", errno);
    for (int fd : {ctx.stop_fd, ctx.drain_fd}) {
      if (!watch(fd, EPOLLIN)) return log_call_failure(*ctx.log, "epoll_ctl(stop)", errno);
    }
    for (int fd : ctx.listen_fds) {
      acceptors_.push_back(std::make_unique<Acceptor>(fd, ctx));
      if (!watch(fd, EPOLLIN)) return log_call_failure(*ctx.log, "epoll_ctl(listener)", errno);
    }
    IdleList idle(ctx.endpoint->limits().idle_timeout);
    std::vector<epoll_event> events(static_cast<std::size_t>(options_.max_events));

    bool draining = false;
    bool muted = false;  // the listeners are muted until resume_accepting
    Clock::time_point resume_accepting;
    for (;;) {
      if (draining && open_ == 0) return 0;
      auto now = Clock::now();
      // Resume on a deadline, not on a quiet wakeup: traffic on other connections must not
      // keep the listeners muted.
      if (muted && now >= resume_accepting) {
        for (auto& acceptor : acceptors_)
          modify(acceptor->listen_fd(), EPOLLIN);
        muted = false;
      }
      int timeout_ms = more_to_read_.empty() ? idle.wait_ms(now) : 0;
      if (muted) {
        const auto pause = std::chrono::ceil<std::chrono::milliseconds>(resume_accepting - now);
        timeout_ms = earliest_timeout(timeout_ms, static_cast<int>(pause.count()));
      }
      const int ready =
          plain::epoll_wait(epoll_.get(), events.data(), options_.max_events, timeout_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        return log_call_failure(*ctx.log, "epoll_wait", errno);
      }
      now = Clock::now();
      for (int i = 0; i < ready; ++i) {
        const int fd = events[static_cast<std::size_t>(i)].data.fd;
        const std::uint32_t revents = events[static_cast<std::size_t>(i)].events;
        if (fd == ctx.stop_fd) {
          Finisher finisher(*ctx.endpoint);
          for (auto& c : connections_)
            if (c) c->echo.finish(finisher);
          finisher.run();
          connections_.clear();
          return 0;
        }
        if (fd == ctx.drain_fd) {
          draining = true;
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
        } else if (Acceptor* acceptor = acceptor_for(fd)) {
          if (!draining && !accept_ready(*acceptor, ctx, idle, now)) {
            if (acceptor->closed()) {
              draining = true;
            } else {
              for (auto& a : acceptors_)
                modify(a->listen_fd(), 0);
              muted = true;
              resume_accepting = now + std::chrono::milliseconds(kAcceptBackoffMs);
            }
          }
          if (draining) stop_watching_listeners();
        } else {
          on_ready(fd, revents, ctx, idle, now);
        }
      }
      serve_budget_leftovers(ctx, idle, now);
      idle.expire(now, [&](IdleList::Hook& hook) {
        auto& c = static_cast<Connection&>(hook);
        const int fd = c.echo.fd();
        if (!c.echo.close_if_idle(*ctx.log)) return false;
        drop(fd);
        return true;
      });
    }
  }

 private:
  // Takes the pending connections (a bounded batch per wakeup). False: pause accepting.
  bool accept_ready(Acceptor& acceptor, const ServerContext& ctx, IdleList& idle,
                    Clock::time_point now) {
    return acceptor.accept_batch(kAcceptBatch, [&](Accepted accepted) {
      const int fd = accepted.fd();
      // Edge-triggered: register everything once and never modify (the usual EPOLLET idiom);
      // EPOLLRDHUP says when a FIN sits behind the data, so a short read is not taken for an
      // empty queue then.
      const std::uint32_t interest =
          options_.edge_triggered ? EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET : EPOLLIN;
      try {
        if (static_cast<std::size_t>(fd) >= connections_.size()) {
          connections_.resize(static_cast<std::size_t>(fd) + 1);
        }
        auto connection = std::make_unique<Connection>(std::move(accepted), ctx, interest);
        if (!watch(fd, interest)) {
          ctx.log->warn("epoll_ctl(add fd {}): {}", fd, std::strerror(errno));
          return;  // the connection closes as it goes out of scope
        }
        ctx.log->debug("fd {}: accepted", fd);
        idle.touch(*connection, now);
        connections_[static_cast<std::size_t>(fd)] = std::move(connection);
        ++open_;
      } catch (const std::bad_alloc&) {  // this connection closes; the others go on
        ctx.log->warn("out of memory: closing the new connection on fd {}", fd);
      }
    });
  }

  // Write what is queued, then read and echo; close when the peer is done and all is sent.
  void on_ready(int fd, std::uint32_t revents, const ServerContext& ctx, IdleList& idle,
                Clock::time_point now) {
    Connection& c = *connections_[static_cast<std::size_t>(fd)];
    // Level-triggered: one read per wakeup keeps a flooding client from starving the others.
    // Edge-triggered: the edge is gone once seen, so read until the queue is empty on every
    // event (or the high-water mark, or the budget; the EPOLLOUT edge that follows draining
    // brings us back).
    const Readiness ready{options_.edge_triggered || (revents & (EPOLLIN | EPOLLERR | EPOLLHUP)),
                          (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0,
                          (revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0};
    serve(c, fd, ready, ctx, idle, now);
  }

  void serve(Connection& c, int fd, Readiness ready, const ServerContext& ctx, IdleList& idle,
             Clock::time_point now) {
    if (!c.echo.on_ready(ready, scratch_, *ctx.log,
                         options_.edge_triggered ? Reads::kUntilDrained : Reads::kOne)) {
      drop(fd);  // closed; the kernel dropped it from the epoll set
      return;
    }
    idle.touch(c, now);
    if (options_.edge_triggered) {
      if (c.echo.more_to_read() && !c.queued) {
        c.queued = true;
        more_to_read_.push_back(fd);
      }
      return;
    }
    const std::uint32_t wanted =
        (c.echo.wants_read() ? EPOLLIN : 0u) | (c.echo.wants_write() ? EPOLLOUT : 0u);
    if (wanted != c.interest) {
      if (modify(fd, wanted)) {
        c.interest = wanted;
      } else {  // the recorded interest must match the kernel's, or EPOLLOUT could spin
        ctx.log->warn("epoll_ctl(mod fd {}): {}; closing it", fd, std::strerror(errno));
        drop(fd);
      }
    }
  }

  // Edge-triggered: connections whose read budget ran out get another turn now, behind the
  // ones the kernel reported, without waiting for an edge that will not come.
  void serve_budget_leftovers(const ServerContext& ctx, IdleList& idle, Clock::time_point now) {
    if (more_to_read_.empty()) return;
    std::vector<int> turn;
    turn.swap(more_to_read_);
    for (int fd : turn) {
      auto& slot = connections_[static_cast<std::size_t>(fd)];
      if (!slot) continue;
      slot->queued = false;
      serve(*slot, fd, {true, false}, ctx, idle, now);
    }
  }

  void drop(int fd) {
    auto& slot = connections_[static_cast<std::size_t>(fd)];
    if (slot) {
      slot.reset();
      --open_;
    }
  }
  void stop_watching_listeners() {
    for (auto& acceptor : acceptors_)
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, acceptor->listen_fd(), nullptr);
  }
  bool watch(int fd, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) == 0;
  }
  bool modify(int fd, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event) == 0;
  }
  Acceptor* acceptor_for(int fd) {
    for (auto& acceptor : acceptors_) {
      if (acceptor->listen_fd() == fd) return acceptor.get();
    }
    return nullptr;
  }
  EpollLoopOptions options_;
  Fd epoll_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<std::unique_ptr<Connection>> connections_;  // indexed by descriptor
  std::size_t open_ = 0;                                  // non-null entries of connections_
  std::vector<int> more_to_read_;  // edge-triggered connections cut short by the read budget
  std::array<char, kScratchSize> scratch_{};
};

}  // namespace

void declare_epoll_loop_options(po::options_description& options, const std::string& model) {
  const EpollLoopOptions defaults;
  // clang-format off
  options.add_options()
      ((model + ".edge-triggered").c_str(), po::value<bool>()->default_value(defaults.edge_triggered, defaults.edge_triggered ? "true" : "false"),
       "edge-triggered (EPOLLET): read each socket until its queue is empty, a short read or "
       "EAGAIN (at most 16 reads per wakeup)")
      ((model + ".max-events").c_str(), bounded(1, 65536)->default_value(defaults.max_events),
       "events taken from the kernel per epoll_wait (1-65536)");
  // clang-format on
}

EpollLoopOptions read_epoll_loop_options(const po::variables_map& settings,
                                         const std::string& model) {
  return {settings[model + ".edge-triggered"].as<bool>(),
          settings[model + ".max-events"].as<int>()};
}

int run_epoll_loop(const ServerContext& ctx, const EpollLoopOptions& options) noexcept {
  try {
    // On the heap: the loop holds its 64 KiB scratch buffer.
    return std::make_unique<EpollLoop>(options)->serve(ctx);
  } catch (const std::exception& e) {  // allocation failure outside a connection: give up
    ctx.log->error("epoll loop: {}", e.what());
    return ENOMEM;
  }
}

}  // namespace echod
