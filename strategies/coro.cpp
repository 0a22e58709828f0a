// coro: Boost.Asio with C++20 coroutines, the closest C++ form of the seed's async/await: one
// coroutine per connection reads like the blocking loop (wait, read, write, repeat) but suspends
// at each co_await, so one thread serves thousands of clients. Costs what asio costs plus one
// coroutine frame per connection; coro.threads > 1 spreads the connections over cores.
#include <utility>  // before any Asio header (see asio_support.hpp)

#include <algorithm>
#include <exception>
#include <memory>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "echod/asio_support.hpp"
#include "echod/connection_buffer.hpp"
#include "echod/options.hpp"

namespace {

using namespace echod;
using namespace echod::asio_support;
namespace po = boost::program_options;
using asio::awaitable;

struct Options {
  int threads = 1;
};

// Errors come back in `ec` instead of as exceptions: ending a connection is not exceptional.
auto into(error_code& ec) {
  return asio::redirect_error(asio::use_awaitable, ec);
}

// A coroutine that throws (allocation failure) ends alone; the log says so.
auto log_failure(const ServerContext& ctx) {
  return [log = ctx.log](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log->error("coroutine failed: {}", e.what());
    } catch (...) {
      log->error("coroutine failed: unknown exception");
    }
  };
}

class CoroModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("coro.threads", bounded(1, 1024)->default_value(defaults.threads),
         "threads running the io_context (1-1024); with more than one, each connection's coroutine runs on a strand");
    // clang-format on
  }

  explicit CoroModel(const po::variables_map& settings)
      : options_{settings["coro.threads"].as<int>()} {}

  int run(const ServerContext& ctx) noexcept override {
    return serve(ctx, options_.threads, [](Loop& loop) {
      for (auto& listener : loop.listeners) {
        asio::co_spawn(listener->socket.get_executor(), accept(loop, *listener),
                       log_failure(loop.ctx));
      }
    });
  }

 private:
  // Waits for pending connections and spawns a coroutine for each; pauses when accepting
  // fails, ends at the drain. Runs on the loop's control strand, like the drain that closes the
  // listener.
  static awaitable<void> accept(Loop& loop, Loop::Listener& listener) {
    error_code ec;
    for (;;) {
      co_await listener.socket.async_wait(tcp::acceptor::wait_read, into(ec));
      if (ec) co_return;  // closed by the drain
      const bool ok =
          loop.accept_pending(listener, [&loop](tcp::socket socket, Admission admission) {
            // Made here, on the control strand, so that a stop that follows finds it enrolled.
            auto connection =
                std::make_shared<Connection>(std::move(socket), std::move(admission), loop);
            const auto executor = connection->socket.get_executor();
            asio::co_spawn(executor, echo(std::move(connection), loop.ctx), log_failure(loop.ctx));
          });
      if (ok) continue;
      if (!listener.socket.is_open()) co_return;  // the drain began
      co_await listener.backoff.async_wait(into(ec));
      if (ec) co_return;  // the pause was cancelled by the drain
    }
  }

  // One client: wait until readable, then read and write back until the kernel holds no more.
  // Never reads while a write is pending, so at most one buffer is unechoed (backpressure), and
  // the buffer lives only while data flows: an idle connection holds none. At a stop, the
  // pending wait or write is cancelled and the connection, with what it had not yet written
  // back, goes to the loop's Finisher.
  static awaitable<void> echo(std::shared_ptr<Connection> connection, const ServerContext& ctx) {
    Connection& c = *connection;
    if (!c.enrolled()) co_return;  // stopping: the socket closes with the connection
    c.watch_idle();
    const std::size_t size = std::min(kScratchSize, ctx.high_water);
    error_code ec;
    for (;;) {
      if (c.stopping()) break;
      co_await c.socket.async_wait(tcp::socket::wait_read, into(ec));
      if (ec) break;
      const auto buffer = std::make_unique_for_overwrite<char[]>(size);
      while (!c.stopping()) {
        const std::size_t n = c.read_some({buffer.get(), size}, ec);
        if (ec) break;
        // async_write finishes partial writes before the loop reads again.
        c.write_started();
        const std::size_t sent =
            co_await asio::async_write(c.socket, asio::buffer(buffer.get(), n), into(ec));
        c.write_ended(sent);
        if (c.stopped(ec)) {
          c.finish({buffer.get() + sent, n - sent});
          co_return;
        }
        if (ec) break;
      }
      if (ec && ec != asio::error::would_block) break;
      ec.clear();
    }
    // EOF comes only between writes, so everything received has been echoed (half-close).
    if (c.stopping() && (!ec || c.stopped(ec))) {
      c.finish({});
    } else {
      c.end(ec);
    }
  }

  Options options_;
};

}  // namespace

ECHOD_PLUGIN(CoroModel, "coro",
             "Boost.Asio C++20 coroutines (co_await), one per connection, on coro.threads threads",
             echod::kCapConcurrent | echod::kCapMultiThreaded | echod::kCapEventDriven)
