// splice: a thread per connection that echoes with splice(2): bytes go socket -> pipe -> socket
// inside the kernel and are never copied to user space. The pipe is the connection's buffer, so
// backpressure comes free: while it is full the socket is not read. Costs a thread and three
// descriptors per connection; loses to an event loop with many connections or small messages.
// (The out-of-tree example: built against the installed SDK, see plugins/README.md.)
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <deque>
#include <list>
#include <thread>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/errno_policy.hpp"
#include "echod/server_model.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;

struct Options {
  int max_connections = 1024;
};

class SpliceModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("splice.max-connections", po::value<int>()->default_value(defaults.max_connections),
         "connections (threads) served at once; the next clients wait in the listen queue "
         "(1-10000)");
    // clang-format on
  }

  explicit SpliceModel(const po::variables_map& settings)
      : options_{settings["splice.max-connections"].as<int>()} {
    if (options_.max_connections < 1 || options_.max_connections > 10000) {
      throw std::invalid_argument("splice.max-connections must be between 1 and 10000");
    }
  }

  int run(const ServerContext& ctx) noexcept override {
    int result = 0;
    try {
      result = accept_until_stopped(ctx);
    } catch (const std::exception& e) {
      ctx.log->error("splice: {}", e.what());
      result = ENOMEM;
    }
    eventfd_write(quit_.get(), 1);  // connections end on a stop or, after an error, on this
    for (auto& worker : workers_)
      worker.thread.join();
    return result;
  }

 private:
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  // A connection's buffer: what arrives is spliced into `in` and back out of `out`.
  struct Pipe {
    Fd out;
    Fd in;
  };

  // The main thread accepts, starts a thread per connection and joins the threads that ended.
  int accept_until_stopped(const ServerContext& ctx) {
    if (!quit_ || !finished_) return log_failure(ctx, "eventfd");
    std::deque<Acceptor> acceptors;
    for (int fd : ctx.listen_fds)
      acceptors.emplace_back(fd, ctx);
    int pause_ms = -1;      // after running out of descriptors or threads: accept again later
    bool draining = false;  // drain_fd: the listeners are shut; return once every client left
    for (;;) {
      if (draining && workers_.empty()) return 0;
      const bool accepting = !draining && pause_ms < 0 &&
                             workers_.size() < static_cast<std::size_t>(options_.max_connections);
      std::vector<pollfd> fds{{draining ? ctx.stop_fd : ctx.drain_fd, POLLIN, 0},
                              {finished_.get(), POLLIN, 0}};
      for (auto& a : acceptors)
        fds.push_back({accepting ? a.listen_fd() : -1, POLLIN, 0});
      const int ready = ::poll(fds.data(), fds.size(), pause_ms);
      if (ready < 0 && errno != EINTR) return log_failure(ctx, "poll");
      if (ready == 0) pause_ms = -1;
      if (ready <= 0) continue;
      if (fds[0].revents != 0) {
        if (draining) return 0;  // stop_fd: the threads see it too and close their clients
        draining = true;
        continue;
      }
      if (fds[1].revents != 0) join_finished();
      for (std::size_t i = 0; i < acceptors.size(); ++i) {
        if (fds[i + 2].revents != 0 && !accept_one(acceptors[i], ctx)) pause_ms = kAcceptBackoffMs;
      }
    }
  }

  // Takes one pending connection and starts its thread. False when out of descriptors or threads.
  bool accept_one(Acceptor& acceptor, const ServerContext& ctx) {
    auto [status, socket] = acceptor.accept();
    if (status == Acceptor::Status::kWouldBlock) return true;
    if (status != Acceptor::Status::kAccepted) return false;
    ctx.log->debug("fd {}: accepted", socket.fd());
    // The pipe is made here, on the accepting thread: a pipe2() on a connection's thread could
    // take the slot the Acceptor frees to shed connections when out of descriptors, leaving it
    // no spare and later clients stuck in the listen queue.
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC | O_NONBLOCK) != 0) {
      ctx.log->warn("fd {}: pipe2: {}; closing it", socket.fd(), std::strerror(errno));
      return false;  // the socket is closed on return: the peer sees a close, not a hang
    }
    Pipe pipe{Fd(ends[0]), Fd(ends[1])};
    Worker& worker = workers_.emplace_back();
    try {
      worker.thread = std::thread(
          [this, &worker, &ctx, socket = std::move(socket), pipe = std::move(pipe)]() mutable {
            echo(std::move(socket), std::move(pipe), ctx);
            worker.done = true;
            eventfd_write(finished_.get(), 1);
          });
    } catch (const std::system_error& e) {  // no thread: the connection is closed
      ctx.log->warn("cannot start a thread: {}", e.what());
      workers_.pop_back();
      return false;
    }
    if (workers_.size() == static_cast<std::size_t>(options_.max_connections)) {
      ctx.log->info("splice.max-connections ({}) reached: new clients wait in the listen queue",
                    options_.max_connections);
    }
    return true;
  }

  void join_finished() {
    eventfd_t count = 0;
    eventfd_read(finished_.get(), &count);
    workers_.remove_if([](Worker& worker) {
      if (!worker.done) return false;
      worker.thread.join();
      return true;
    });
  }

  // One connection, on its own thread: splice what arrives into the pipe and the pipe back out,
  // until the peer has closed and everything is echoed, the peer is gone, or a stop comes.
  // An idle client (nothing received, nothing queued for the idle timeout) is closed.
  void echo(Accepted connection, Pipe pipe, const ServerContext& ctx) noexcept {
    const int fd = connection.fd();
    const auto idle_ms = ctx.endpoint->limits().idle_timeout.count();
    // At most high_water bytes in flight: the pipe's size is a power of two pages, >= 1 page.
    const std::size_t wanted =
        std::bit_floor(std::clamp<std::size_t>(ctx.high_water, 4096, 1 << 30));
    ::fcntl(pipe.in.get(), F_SETPIPE_SZ, static_cast<int>(wanted));  // else the default, 64 KiB
    const auto capacity =
        static_cast<std::size_t>(std::max(::fcntl(pipe.in.get(), F_GETPIPE_SZ), 4096));

    std::size_t queued = 0;  // bytes in the pipe: received, not yet sent back
    bool pipe_full = false;  // the last splice in found no room: wait until some went out
    bool peer_done = false;  // the peer shut down its sending side
    while (!(peer_done && queued == 0)) {
      const int events = (!peer_done && !pipe_full ? POLLIN : 0) | (queued > 0 ? POLLOUT : 0);
      pollfd fds[3] = {
          {fd, static_cast<short>(events), 0}, {ctx.stop_fd, POLLIN, 0}, {quit_.get(), POLLIN, 0}};
      const int ready = ::poll(fds, 3, idle_ms > 0 && queued == 0 ? static_cast<int>(idle_ms) : -1);
      if (ready < 0) {
        if (errno == EINTR) continue;
        ctx.log->error("fd {}: poll: {}", fd, std::strerror(errno));
        break;
      }
      if (ready == 0) {
        ctx.log->debug("fd {}: closed after {} ms idle", fd, idle_ms);
        ctx.endpoint->count_idle_close();
        break;
      }
      if (fds[1].revents != 0 || fds[2].revents != 0) break;
      const bool hangup = fds[0].revents & (POLLERR | POLLHUP);
      if (queued > 0 && (hangup || (fds[0].revents & POLLOUT))) {
        const ssize_t sent = ::splice(pipe.out.get(), nullptr, fd, nullptr, queued,
                                      SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (sent < 0 && !expected(errno, fd, "splice to socket", ctx)) {
          connection.admission.mark_failed();  // counted in echod_connection_errors_total
          break;
        }
        if (sent > 0) {
          queued -= static_cast<std::size_t>(sent);
          pipe_full = false;
        }
      }
      if (!peer_done && !pipe_full && (hangup || (fds[0].revents & POLLIN))) {
        const ssize_t got = ::splice(fd, nullptr, pipe.in.get(), nullptr, capacity,
                                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (got < 0 && !expected(errno, fd, "splice from socket", ctx)) {
          connection.admission.mark_failed();
          break;
        }
        // EAGAIN with bytes queued means no room in the pipe (an empty pipe always has room).
        if (got < 0) pipe_full = queued > 0;
        if (got == 0) peer_done = true;
        if (got > 0) queued += static_cast<std::size_t>(got);
      }
    }
    ctx.log->debug("fd {}: closed", fd);
  }

  // True when the error only means "not now"; otherwise logs it (a peer gone at debug level).
  static bool expected(int error, int fd, const char* call, const ServerContext& ctx) {
    switch (classify_errno(error)) {
      case ErrnoClass::kRetry:
      case ErrnoClass::kWouldBlock:
        return true;
      case ErrnoClass::kPeerGone:
        ctx.log->debug("fd {}: {}: {}", fd, call, errno_name(error));
        return false;
      default:
        ctx.log->warn("fd {}: {}: {} ({})", fd, call, std::strerror(error), errno_name(error));
        return false;
    }
  }

  static int log_failure(const ServerContext& ctx, const char* call) {
    const int error = errno;
    ctx.log->error("{}: {}", call, std::strerror(error));
    return error;
  }

  Options options_;
  Fd quit_{::eventfd(0, EFD_CLOEXEC)};                     // readable once run() is ending
  Fd finished_{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};  // counts threads that ended
  std::list<Worker> workers_;                              // a list: a Worker never moves
};

}  // namespace

ECHOD_PLUGIN(SpliceModel, "splice",
             "thread per connection, zero-copy echo with splice() through a pipe (out-of-tree "
             "example)",
             echod::kCapConcurrent | echod::kCapMultiThreaded)
