// iterative: one process, one thread, one client at a time. Accepts a connection, echoes it
// until the peer closes, then accepts the next. The simplest correct server; every other
// client waits in the listen queue meanwhile, so it loses as soon as two clients overlap.
#include "echod/acceptor.hpp"
#include "echod/blocking_echo.hpp"
#include "echod/server_model.hpp"
#include "echod/stop.hpp"

namespace {

using namespace echod;

class IterativeModel final : public IServerModel {
 public:
  static void declare_options(boost::program_options::options_description&) {}
  explicit IterativeModel(const boost::program_options::variables_map&) {}

  // A drain ends the loop once the client being served (if any) is done: the listener is shut.
  int run(const ServerContext& ctx) noexcept override {
    Acceptor acceptor(ctx.listen_fds.front(), ctx);
    for (;;) {
      const Wait wait = wait_ready(acceptor.listen_fd(), POLLIN, ctx.drain_fd);
      if (wait == Wait::kStopped) return 0;
      if (wait != Wait::kReady) continue;  // kFailed has slept its back-off already
      auto [status, connection] = acceptor.accept();
      if (status == Acceptor::Status::kAccepted) {
        ctx.log->debug("serving fd {}", connection.fd());
        if (serve_blocking(std::move(connection), ctx) == ServeEnd::kStopped) return 0;
      } else if (status == Acceptor::Status::kClosed) {
        return 0;
      } else if (status != Acceptor::Status::kWouldBlock) {
        if (!sleep_unless_stopped(ctx.drain_fd, kAcceptBackoffMs)) return 0;
      }
    }
  }
};

}  // namespace

ECHOD_PLUGIN(IterativeModel, "iterative",
             "blocking, one client at a time: accept, echo until EOF, repeat", echod::kCapNone)
