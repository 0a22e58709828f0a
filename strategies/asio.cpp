// asio: Boost.Asio with completion callbacks, the C++ form of the seed's asyncio server: one
// io_context (epoll underneath) runs every connection as a chain of handlers, on asio.threads
// threads with a strand per connection. Costs over a hand-written epoll loop: an operation
// object per wait and write (from a per-thread recycling cache), a few locks, and a queue hop
// per completion; pays off when threads > 1 spreads clients over cores.
#include <utility>  // before any Asio header (see asio_support.hpp)

#include <algorithm>
#include <memory>

#include <boost/asio/write.hpp>

#include "echod/asio_support.hpp"
#include "echod/connection_buffer.hpp"
#include "echod/options.hpp"

namespace {

using namespace echod;
using namespace echod::asio_support;
namespace po = boost::program_options;

struct Options {
  int threads = 1;
};

// One client: wait until readable, read, write it all back, read again. Never reads while a
// write is pending, so at most one buffer is unechoed (backpressure), and the buffer exists only
// while data flows: an idle connection holds none. Handlers run on the socket's executor. At a
// stop, the pending wait or write is cancelled and the connection, with what it had not yet
// written back, goes to the loop's Finisher.
class Session final : public Connection {
 public:
  Session(tcp::socket socket, Admission admission, Loop& loop)
      : Connection(std::move(socket), std::move(admission), loop),
        buffer_size_(std::min(kScratchSize, loop.ctx.high_water)) {}

  void start() {
    if (!enrolled()) return;  // stopping: the socket closes with the session
    watch_idle();
    wait();
  }

 private:
  std::shared_ptr<Session> self() { return std::static_pointer_cast<Session>(shared_from_this()); }

  void wait() {
    buffer_.reset();
    if (stopping()) return finish({});
    socket.async_wait(tcp::socket::wait_read, [self = self()](error_code ec) {
      if (!ec) return self->read();
      self->stopped(ec) ? self->finish({}) : self->end(ec);
    });
  }

  // Takes what the kernel holds now; after a write it usually holds more (streaming peers).
  void read() {
    if (stopping()) return finish({});
    if (!buffer_) buffer_ = std::make_unique_for_overwrite<char[]>(buffer_size_);
    error_code ec;
    const std::size_t size = read_some({buffer_.get(), buffer_size_}, ec);
    if (ec == asio::error::would_block) return wait();
    if (ec) return end(ec);  // EOF comes only between writes: everything was echoed
    write(size);
  }

  // async_write finishes partial writes; the next read starts only once all is sent.
  void write(std::size_t size) {
    write_started();
    asio::async_write(socket, asio::buffer(buffer_.get(), size),
                      [self = self(), size](error_code ec, std::size_t sent) {
                        self->write_ended(sent);
                        if (!ec) return self->read();
                        if (!self->stopped(ec)) return self->end(ec);
                        self->finish({self->buffer_.get() + sent, size - sent});
                      });
  }

  std::size_t buffer_size_;
  std::unique_ptr<char[]> buffer_;
};

class AsioModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("asio.threads", bounded(1, 1024)->default_value(defaults.threads),
         "threads running the io_context (1-1024); with more than one, each connection's handlers are serialised by a strand");
    // clang-format on
  }

  explicit AsioModel(const po::variables_map& settings)
      : options_{settings["asio.threads"].as<int>()} {}

  int run(const ServerContext& ctx) noexcept override {
    return serve(ctx, options_.threads, [](Loop& loop) {
      for (auto& listener : loop.listeners)
        accept(loop, *listener);
    });
  }

 private:
  // Waits for pending connections and starts a session for each; pauses when accepting fails,
  // ends at the drain. Runs on the loop's control strand, like the drain that closes the
  // listener.
  static void accept(Loop& loop, Loop::Listener& listener) {
    listener.socket.async_wait(tcp::acceptor::wait_read, [&loop, &listener](error_code ec) {
      if (ec) return;  // closed by the drain
      const bool ok =
          loop.accept_pending(listener, [&loop](tcp::socket socket, Admission admission) {
            auto session = std::make_shared<Session>(std::move(socket), std::move(admission), loop);
            const auto executor = session->socket.get_executor();
            asio::post(executor, [session = std::move(session)] { session->start(); });
          });
      if (ok) return accept(loop, listener);
      if (!listener.socket.is_open()) return;  // the drain began
      listener.backoff.async_wait([&loop, &listener](error_code ec) {
        if (!ec) accept(loop, listener);
      });
    });
  }

  Options options_;
};

}  // namespace

ECHOD_PLUGIN(AsioModel, "asio",
             "Boost.Asio completion handlers on an io_context run by asio.threads threads",
             echod::kCapConcurrent | echod::kCapMultiThreaded | echod::kCapEventDriven)
