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

namespace {

using namespace echod;
using namespace echod::asio_support;
namespace po = boost::program_options;

struct Options {
  int threads = 1;
};

// One client: wait until readable, read, write it all back, read again. Never reads while a
// write is pending, so at most one buffer is unechoed (backpressure), and the buffer exists only
// while data flows: an idle connection holds none. Handlers run on the socket's executor.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Loop& loop)
      : socket_(std::move(socket)),
        entry_(loop.live, socket_),
        loop_(loop),
        buffer_size_(std::min(kScratchSize, loop.ctx.high_water)) {}

  asio::any_io_executor executor() { return socket_.get_executor(); }
  void start() {
    if (entry_) wait();  // else stopping: the socket closes with the session
  }

 private:
  void wait() {
    buffer_.reset();
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      ec ? self->close(ec) : self->read();
    });
  }

  // Takes what the kernel holds now; after a write it usually holds more (streaming peers).
  void read() {
    if (!buffer_) buffer_ = std::make_unique_for_overwrite<char[]>(buffer_size_);
    error_code ec;
    const std::size_t size = socket_.read_some(asio::buffer(buffer_.get(), buffer_size_), ec);
    if (ec == asio::error::would_block) return wait();
    if (ec) return close(ec);
    write(size);
  }

  // async_write finishes partial writes; the next read starts only once all is sent.
  void write(std::size_t size) {
    asio::async_write(socket_, asio::buffer(buffer_.get(), size),
                      [self = shared_from_this()](error_code ec, std::size_t) {
                        ec ? self->close(ec) : self->read();
                      });
  }

  // EOF comes only between writes, so everything received has been echoed (half-close).
  void close(const error_code& ec) {
    loop_.log_end(socket_, ec);
    error_code ignored;
    socket_.close(ignored);
  }

  tcp::socket socket_;
  LiveSockets::Entry entry_;
  Loop& loop_;
  std::size_t buffer_size_;
  std::unique_ptr<char[]> buffer_;
};

class AsioModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("asio.threads", po::value<int>()->default_value(defaults.threads),
         "threads running the io_context (1-1024); with more than one, each connection's handlers are serialised by a strand");
    // clang-format on
  }

  explicit AsioModel(const po::variables_map& settings)
      : options_{settings["asio.threads"].as<int>()} {
    if (options_.threads < 1 || options_.threads > 1024) {
      throw std::invalid_argument("asio.threads must be between 1 and 1024");
    }
  }

  int run(const ServerContext& ctx) noexcept override {
    return serve(ctx, options_.threads, [](Loop& loop) {
      for (auto& listener : loop.listeners)
        accept(loop, *listener);
    });
  }

 private:
  // Waits for pending connections and starts a session for each; pauses when accepting fails.
  // Runs on the loop's control strand, like the stop that closes the listener.
  static void accept(Loop& loop, Loop::Listener& listener) {
    listener.socket.async_wait(tcp::acceptor::wait_read, [&loop, &listener](error_code ec) {
      if (ec) return;  // closed by the stop
      const bool ok = loop.accept_pending(listener, [&loop](tcp::socket socket) {
        auto session = std::make_shared<Session>(std::move(socket), loop);
        asio::post(session->executor(), [session] { session->start(); });
      });
      if (ok) return accept(loop, listener);
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
             echod::kCapConcurrent | echod::kCapMultiThreaded)
