// The per-connection loop of the blocking models (iterative, thread, fork, prefork, prethread):
// one thread of control serves one connection from accept to close.
#pragma once

#include "echod/acceptor.hpp"

namespace echod {

struct ServerContext;

enum class ServeEnd {
  kClosedByPeer,  // EOF after everything was echoed
  kPeerGone,      // reset, broken pipe, ... (logged at debug; counted as an error)
  kIdle,          // closed by the idle timeout
  kStopped,       // a stop was requested (the connection was finished: see Finisher)
  kFailed,        // unexpected error, logged (counted as an error)
};

// Echoes on `connection` until the peer closes, the idle timeout passes, a stop is requested
// (stop_fd, by default ctx.stop_fd) or an error occurs, then closes it. After the peer's EOF,
// finishes sending what is queued before closing (half-close). Waits in poll() on the socket
// and stop_fd, so a stop is seen at once even while idle; a drain does not end it. Uses a stack
// scratch buffer; the connection's queue obeys ctx.high_water. Adds its bytes to the summary,
// and marks `connection.admission` failed when it ends on an I/O error (kPeerGone, kFailed).
ServeEnd serve_blocking(Accepted connection, const ServerContext& ctx) noexcept;
ServeEnd serve_blocking(Accepted connection, const ServerContext& ctx, int stop_fd) noexcept;

}  // namespace echod
