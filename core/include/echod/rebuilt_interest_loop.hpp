// The event loop select() and poll() share. Both take the whole interest set on every call, so
// the loop rebuilds it before each wait (level-triggered: read while a client may be read,
// write while echoed bytes are queued), serves every connection the wait reported, closes the
// idle ones, then accepts. Only the multiplexer differs, which is exactly what the two models
// exist to compare.
#pragma once

#include <cerrno>
#include <chrono>
#include <memory>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/echo_connection.hpp"
#include "echod/errno_policy.hpp"
#include "echod/idle_list.hpp"
#include "echod/server_model.hpp"

namespace echod {

// A Multiplexer (see strategies/select.cpp and strategies/poll.cpp) provides:
//   void clear();                            forget the previous wait's interest
//   int arm(int fd, bool read, bool write);  watch fd; returns the slot readiness() takes
//   int wait(int timeout_ms);                -1 waits forever; < 0 with errno on failure
//   Readiness readiness(int slot) const;
// `admit(fd, clients)` decides whether a new connection is kept; false closes it at once.
//
// Runs on the calling thread until stop_fd is readable (returns 0 after finishing every
// client), until a drain has begun and the last client left (returns 0), or until the wait
// fails (logs `call` and returns its errno). Allocation failure while accepting drops that
// connection; elsewhere it throws.
template <class Multiplexer, class Admit>
int run_rebuilt_interest_loop(const ServerContext& ctx, const char* call, Multiplexer& mux,
                              Admit admit) {
  using Clock = std::chrono::steady_clock;
  struct Connection : IdleList::Hook {
    Connection(Accepted accepted, const ServerContext& ctx)
        : echo(std::move(accepted), ctx.high_water, *ctx.endpoint) {}
    EchoConnection echo;
    int slot = -1;  // where the current wait watches it
  };
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  for (int fd : ctx.listen_fds)
    acceptors.push_back(std::make_unique<Acceptor>(fd, ctx));
  std::vector<int> listener_slots(acceptors.size());
  std::vector<std::unique_ptr<Connection>> connections;
  IdleList idle(ctx.endpoint->limits().idle_timeout);
  std::vector<char> scratch(kScratchSize);

  bool draining = false;
  Clock::time_point resume_accepting;  // while shedding load, listeners are muted until then
  for (;;) {
    if (draining && connections.empty()) return 0;
    auto now = Clock::now();
    const bool accepting = !draining && now >= resume_accepting;
    mux.clear();
    const int stop_slot = mux.arm(ctx.stop_fd, true, false);
    const int drain_slot = mux.arm(ctx.drain_fd, !draining, false);
    for (std::size_t i = 0; i < acceptors.size(); ++i)
      listener_slots[i] = mux.arm(acceptors[i]->listen_fd(), accepting, false);
    for (auto& c : connections)
      c->slot = mux.arm(c->echo.fd(), c->echo.wants_read(), c->echo.wants_write());

    int timeout_ms = idle.wait_ms(now);
    if (!accepting && !draining) {
      const auto pause = std::chrono::ceil<std::chrono::milliseconds>(resume_accepting - now);
      timeout_ms =
          earliest_timeout(timeout_ms, static_cast<int>(std::max<long long>(pause.count(), 0)));
    }
    if (mux.wait(timeout_ms) < 0) {
      if (errno == EINTR) continue;
      return log_call_failure(*ctx.log, call, errno);
    }
    if (mux.readiness(stop_slot).readable) {
      Finisher finisher(*ctx.endpoint);
      for (auto& c : connections)
        c->echo.finish(finisher);
      finisher.run();
      return 0;
    }
    if (mux.readiness(drain_slot).readable) draining = true;  // the listeners are shut

    // Write what is queued, then read and echo once (so a flooding client cannot starve the
    // others); close when the peer is done and all is sent.
    now = Clock::now();
    for (auto& c : connections) {
      const Readiness ready = mux.readiness(c->slot);
      if (!ready.readable && !ready.writable) continue;
      if (c->echo.on_ready(ready, scratch, *ctx.log)) idle.touch(*c, now);
    }
    idle.expire(now, [&](IdleList::Hook& hook) {
      return static_cast<Connection&>(hook).echo.close_if_idle(*ctx.log);
    });
    std::erase_if(connections, [](const auto& c) { return !c->echo.open(); });

    // Accept last: a descriptor closed above and reused now must not inherit its readiness.
    for (std::size_t i = 0; i < acceptors.size() && accepting; ++i) {
      if (!mux.readiness(listener_slots[i]).readable) continue;
      const bool keep_accepting = acceptors[i]->accept_batch(kAcceptBatch, [&](Accepted accepted) {
        if (!admit(accepted.fd(), connections.size())) return;
        ctx.log->debug("fd {}: accepted", accepted.fd());
        try {
          auto c = std::make_unique<Connection>(std::move(accepted), ctx);
          idle.touch(*c, now);
          connections.push_back(std::move(c));
        } catch (const std::bad_alloc&) {  // this connection closes; the others go on
          ctx.log->warn("out of memory: closing a new connection");
        }
      });
      if (acceptors[i]->closed()) draining = true;
      if (!keep_accepting) {
        resume_accepting = Clock::now() + std::chrono::milliseconds(kAcceptBackoffMs);
      }
    }
  }
}

}  // namespace echod
