// The event loop select() and poll() share. Both take the whole interest set on every call, so
// the loop rebuilds it before each wait (level-triggered: read while a client may be read,
// write while echoed bytes are queued), serves every connection the wait reported, then
// accepts. Only the multiplexer differs, which is exactly what the two models exist to compare.
#pragma once

#include <cerrno>
#include <chrono>
#include <memory>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/echo_connection.hpp"
#include "echod/errno_policy.hpp"
#include "echod/server_model.hpp"

namespace echod {

// A Multiplexer (see strategies/select.cpp and strategies/poll.cpp) provides:
//   void clear();                            forget the previous wait's interest
//   int arm(int fd, bool read, bool write);  watch fd; returns the slot readiness() takes
//   int wait(int timeout_ms);                -1 waits forever; < 0 with errno on failure
//   Readiness readiness(int slot) const;
// `admit(fd, clients)` decides whether a new connection is kept; false closes it at once.
//
// Runs on the calling thread until stop_fd is readable (returns 0 after closing every client)
// or the wait fails (logs `call` and returns its errno). Allocation failure throws.
template <class Multiplexer, class Admit>
int run_rebuilt_interest_loop(const ServerContext& ctx, const char* call, Multiplexer& mux,
                              Admit admit) {
  using Clock = std::chrono::steady_clock;
  struct Connection {
    EchoConnection echo;
    int slot = -1;  // where the current wait watches it
  };
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  for (int fd : ctx.listen_fds)
    acceptors.push_back(std::make_unique<Acceptor>(fd, ctx.log));
  std::vector<int> listener_slots(acceptors.size());
  std::vector<Connection> connections;
  std::vector<char> scratch(kScratchSize);

  Clock::time_point resume_accepting;  // while shedding load, listeners are muted until then
  for (;;) {
    const auto now = Clock::now();
    const bool accepting = now >= resume_accepting;
    mux.clear();
    const int stop_slot = mux.arm(ctx.stop_fd, true, false);
    for (std::size_t i = 0; i < acceptors.size(); ++i)
      listener_slots[i] = mux.arm(acceptors[i]->listen_fd(), accepting, false);
    for (Connection& c : connections)
      c.slot = mux.arm(c.echo.fd(), c.echo.wants_read(), c.echo.wants_write());

    const int timeout_ms =
        accepting
            ? -1
            : static_cast<int>(
                  std::chrono::ceil<std::chrono::milliseconds>(resume_accepting - now).count());
    if (mux.wait(timeout_ms) < 0) {
      if (errno == EINTR) continue;
      return log_call_failure(*ctx.log, call, errno);
    }
    if (mux.readiness(stop_slot).readable) return 0;  // `connections` closes every client

    // Write what is queued, then read and echo once (so a flooding client cannot starve the
    // others); close when the peer is done and all is sent.
    for (Connection& c : connections)
      c.echo.on_ready(mux.readiness(c.slot), scratch, *ctx.log);
    std::erase_if(connections, [](const Connection& c) { return !c.echo.open(); });

    // Accept last: a descriptor closed above and reused now must not inherit its readiness.
    for (std::size_t i = 0; i < acceptors.size(); ++i) {
      if (!mux.readiness(listener_slots[i]).readable) continue;
      const bool keep_accepting = acceptors[i]->accept_batch(kAcceptBatch, [&](Fd socket) {
        if (!admit(socket.get(), connections.size())) return;
        ctx.log->debug("fd {}: accepted", socket.get());
        connections.push_back({EchoConnection(std::move(socket), ctx.high_water)});
      });
      if (!keep_accepting) {
        resume_accepting = Clock::now() + std::chrono::milliseconds(kAcceptBackoffMs);
      }
    }
  }
}

}  // namespace echod
