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

  int run(const ServerContext& ctx) noexcept override {
    Acceptor acceptor(ctx.listen_fds.front(), ctx.log);
    while (wait_ready(acceptor.listen_fd(), POLLIN, ctx.stop_fd)) {
      auto [status, connection] = acceptor.accept();
      if (status == Acceptor::Status::kAccepted) {
        ctx.log->debug("serving fd {}", connection.get());
        if (serve_blocking(std::move(connection), ctx.stop_fd, ctx.high_water, *ctx.log) ==
            ServeEnd::kStopped) {
          break;
        }
      } else if (status != Acceptor::Status::kWouldBlock) {
        if (!sleep_unless_stopped(ctx.stop_fd, kAcceptBackoffMs)) break;
      }
    }
    return 0;
  }
};

}  // namespace

ECHOD_PLUGIN(IterativeModel, "iterative",
             "blocking, one client at a time: accept, echo until EOF, repeat", echod::kCapNone)
