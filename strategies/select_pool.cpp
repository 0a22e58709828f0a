// select-pool: a select() reactor thread accepts and receives; a pool of worker threads sends.
// One worker at most holds a connection's sending side, so bytes leave in arrival order; a full
// socket parks the connection until the reactor sees it writable. Costs a copy and a thread hop
// per message, keeps FD_SETSIZE; loses to epoll when sending is cheap, as an echo's is.
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/connection_buffer.hpp"  // kScratchSize
#include "echod/errno_policy.hpp"
#include "echod/idle_list.hpp"
#include "echod/options.hpp"
#include "echod/select_limits.hpp"
#include "echod/server_model.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

struct Options {
  int threads = 4;
};

// Who holds a connection's sending side.
enum class Sender {
  kIdle,    // nothing to send
  kQueued,  // in the job queue or being sent by a worker: only that worker touches `outbox`
  kParked,  // the socket was full: the reactor waits for writability, then queues it again
};

// One client. The reactor thread owns it (creates, reads, closes, orders it in the idle list);
// fields marked (shared) are guarded by the model's mutex_; `outbox` and `sent` belong to
// whoever holds the sending side. Destroyed only when no worker holds it; adds its byte counts
// to the stop summary then.
struct Connection : IdleList::Hook {
  Connection(Accepted accepted, Endpoint& endpoint)
      : fd(std::move(accepted.socket)),
        admission(std::move(accepted.admission)),
        endpoint(endpoint) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { endpoint.count_bytes(bytes_received, bytes_sent); }

  // The bytes received but not yet sent, in order, for the Finisher at a stop (no worker may
  // hold the connection then).
  [[nodiscard]] std::vector<char> unsent_bytes() const {
    std::vector<char> bytes(outbox.begin() + static_cast<std::ptrdiff_t>(sent), outbox.end());
    bytes.insert(bytes.end(), inbox.begin(), inbox.end());
    return bytes;
  }

  Fd fd;
  Admission admission;  // its place under the endpoint's caps
  Endpoint& endpoint;
  std::uint64_t bytes_received = 0;  // the reactor's
  std::uint64_t bytes_sent = 0;      // (shared)
  bool closed_idle = false;          // the reactor's: closed by the idle timeout, logged
  std::vector<char> inbox;           // (shared) received, not yet taken by a worker
  std::size_t unsent = 0;            // (shared) bytes of inbox and outbox not yet sent
  Sender sender = Sender::kIdle;     // (shared)
  bool peer_done = false;            // (shared) the peer shut down its sending side
  bool failed = false;               // (shared) reset or error: close without sending the rest
  std::vector<char> outbox;          // taken from inbox, being sent
  std::size_t sent = 0;              // bytes at the front of outbox already sent
};

class SelectPoolModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("select-pool.threads", bounded(1, 256)->default_value(defaults.threads),
         "worker threads that send (1-256); one select() thread accepts and receives");
    // clang-format on
  }

  explicit SelectPoolModel(const po::variables_map& settings)
      : options_{settings["select-pool.threads"].as<int>()} {}

  // Starts the workers, runs the reactor until the stop (or until a drain has seen the last
  // client leave), then stops and joins the workers before finishing the connections they may
  // have held: what was received and not yet sent goes to the Finisher with the socket.
  int run(const ServerContext& ctx) noexcept override {
    high_water_ = std::max<std::size_t>(ctx.high_water, 1);
    wake_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_) return log_call_failure(*ctx.log, "eventfd", errno);
    std::vector<std::thread> pool;
    int result = 0;
    try {
      for (int i = 0; i < options_.threads; ++i)
        pool.emplace_back([this, &ctx] { work(ctx); });
      result = serve(ctx);
    } catch (const std::system_error& e) {
      result = log_call_failure(*ctx.log, "starting the worker threads", e.code().value());
    } catch (const std::exception& e) {  // allocation failure: give up cleanly
      result = log_call_failure(*ctx.log, e.what(), ENOMEM);
    }
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_ready_.notify_all();
    for (auto& thread : pool)
      thread.join();
    Finisher finisher(*ctx.endpoint);
    for (auto& c : connections_) {
      if (c->failed) continue;  // reset or error: just close
      try {
        finisher.add(std::move(c->fd), c->unsent_bytes());
      } catch (const std::bad_alloc&) {  // this one just closes
        ctx.log->warn("out of memory: closing fd {} at stop", c->fd.get());
      }
      c->admission.release();
    }
    connections_.clear();
    finisher.run();
    return result;
  }

 private:
  // The reactor: watches stop_fd, drain_fd, the wake-up eventfd, the listeners (until a drain),
  // every connection that may read (below the high-water mark) and every parked one for
  // writability; closes the idle ones.
  int serve(const ServerContext& ctx) {
    std::vector<int> fixed_fds(ctx.listen_fds.begin(), ctx.listen_fds.end());
    fixed_fds.insert(fixed_fds.end(), {ctx.stop_fd, ctx.drain_fd, wake_.get()});
    if (const int error = check_fd_set_room(fixed_fds, "select-pool", *ctx.log)) return error;
    for (int fd : ctx.listen_fds) {
      acceptors_.push_back(std::make_unique<Acceptor>(fd, ctx));
    }
    IdleList idle(ctx.endpoint->limits().idle_timeout);

    bool draining = false;
    Clock::time_point resume_accepting;  // while shedding load, listeners are muted until then
    for (;;) {
      if (draining && connections_.empty()) return 0;
      auto now = Clock::now();
      const bool accepting = !draining && now >= resume_accepting;
      FD_ZERO(&read_set_);
      FD_ZERO(&write_set_);
      max_fd_ = -1;
      arm(ctx.stop_fd, true, false);
      arm(ctx.drain_fd, !draining, false);
      arm(wake_.get(), true, false);
      for (auto& acceptor : acceptors_)
        arm(acceptor->listen_fd(), accepting, false);
      {
        std::lock_guard lock(mutex_);
        for (auto& c : connections_) {
          arm(c->fd.get(), !c->peer_done && !c->failed && c->unsent < high_water_,
              c->sender == Sender::kParked);
        }
      }
      int timeout_ms = idle.wait_ms(now);
      if (!accepting && !draining) {
        const auto pause = std::chrono::ceil<std::chrono::milliseconds>(resume_accepting - now);
        timeout_ms =
            earliest_timeout(timeout_ms, static_cast<int>(std::max<long long>(pause.count(), 0)));
      }
      timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
      if (::select(max_fd_ + 1, &read_set_, &write_set_, nullptr,
                   timeout_ms < 0 ? nullptr : &timeout) < 0) {
        if (errno == EINTR) continue;
        return log_call_failure(*ctx.log, "select", errno);
      }
      if (FD_ISSET(ctx.stop_fd, &read_set_)) return 0;          // run() finishes the connections
      if (FD_ISSET(ctx.drain_fd, &read_set_)) draining = true;  // the listeners are shut
      eventfd_t wakeups;
      if (FD_ISSET(wake_.get(), &read_set_)) eventfd_read(wake_.get(), &wakeups);
      now = Clock::now();
      for (auto& c : connections_)
        on_ready(*c, ctx, idle, now);
      idle.expire(now, [&](IdleList::Hook& hook) {
        return close_if_idle(static_cast<Connection&>(hook), ctx);
      });
      close_finished(ctx);
      // Accept last: a descriptor closed above and reused now must not inherit its readiness.
      for (auto& acceptor : acceptors_) {
        if (!accepting || !FD_ISSET(acceptor->listen_fd(), &read_set_)) continue;
        if (!accept_ready(*acceptor, ctx, idle, now)) {
          if (acceptor->closed()) draining = true;
          resume_accepting = Clock::now() + std::chrono::milliseconds(kAcceptBackoffMs);
        }
      }
    }
  }

  // Takes the pending connections (a bounded batch per wakeup) that select() can watch;
  // refused ones close at once. False: pause accepting (for good once the listener is shut).
  bool accept_ready(Acceptor& acceptor, const ServerContext& ctx, IdleList& idle,
                    Clock::time_point now) {
    return acceptor.accept_batch(kAcceptBatch, [&](Accepted accepted) {
      if (!admission_.admit(accepted.fd(), connections_.size(), *ctx.log)) return;
      ctx.log->debug("fd {}: accepted", accepted.fd());
      try {
        connections_.push_back(std::make_unique<Connection>(std::move(accepted), *ctx.endpoint));
        idle.touch(*connections_.back(), now);
      } catch (const std::bad_alloc&) {  // this connection closes; the others go on
        ctx.log->warn("out of memory: closing a new connection");
      }
    });
  }

  // The idle timeout, from the reactor: a connection with bytes still to send (or a worker
  // sending them) is not idle. Marked here, closed by close_finished().
  bool close_if_idle(Connection& c, const ServerContext& ctx) {
    std::lock_guard lock(mutex_);
    if (c.sender != Sender::kIdle || c.unsent > 0) return false;
    ctx.log->debug("fd {}: closed after {} s idle", c.fd.get(),
                   std::chrono::duration<double>(ctx.endpoint->limits().idle_timeout).count());
    ctx.endpoint->count_idle_close();
    c.closed_idle = true;
    c.failed = true;  // nothing is left to send: close_finished() closes it
    return true;
  }

  // Gives a writable parked connection back to the workers; receives once into its inbox.
  void on_ready(Connection& c, const ServerContext& ctx, IdleList& idle, Clock::time_point now) {
    const int fd = c.fd.get();
    if (!FD_ISSET(fd, &read_set_) && !FD_ISSET(fd, &write_set_)) return;
    idle.touch(c, now);
    std::unique_lock lock(mutex_);
    if (FD_ISSET(fd, &write_set_) && c.sender == Sender::kParked) queue(c);
    if (!FD_ISSET(fd, &read_set_)) return;
    const std::size_t room = high_water_ - std::min(c.unsent, high_water_);
    lock.unlock();
    ssize_t n;
    do {
      n = ::recv(fd, scratch_.data(), std::clamp<std::size_t>(room, 1, scratch_.size()), 0);
    } while (n < 0 && errno == EINTR);
    const int error = errno;
    lock.lock();
    if (n > 0) {
      c.bytes_received += static_cast<std::size_t>(n);
      c.inbox.insert(c.inbox.end(), scratch_.data(), scratch_.data() + n);
      c.unsent += static_cast<std::size_t>(n);
      if (c.sender == Sender::kIdle) queue(c);
    } else if (n == 0) {
      c.peer_done = true;  // echo the rest, then close
    } else if (classify_errno(error) != ErrnoClass::kWouldBlock) {
      fail(c, "recv", error, ctx);
    }
  }

  // Closes connections that are done: failed, or drained after the peer's EOF. Never one a
  // worker holds.
  void close_finished(const ServerContext& ctx) {
    std::lock_guard lock(mutex_);
    std::erase_if(connections_, [&](const std::unique_ptr<Connection>& c) {
      const bool done = c->sender != Sender::kQueued &&
                        (c->failed || (c->peer_done && c->sender == Sender::kIdle));
      if (done && !c->closed_idle) ctx.log->debug("fd {}: closed", c->fd.get());
      return done;
    });
  }

  // A worker: takes a connection, sends what it holds until done or the socket is full, then
  // hands it back: to the end of the queue if more arrived, to the reactor if parked or done.
  void work(const ServerContext& ctx) {
    for (;;) {
      Connection* c;
      {
        std::unique_lock lock(mutex_);
        work_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        c = jobs_.front();
        jobs_.pop_front();
        if (c->outbox.empty()) c->outbox.swap(c->inbox);  // a fully sent outbox was freed
      }
      const std::size_t before = c->sent;
      const int error = send_outbox(*c);
      const std::size_t sent = c->sent - before;
      if (error == 0) {
        std::vector<char>().swap(c->outbox);  // caught up: hold no memory
        c->sent = 0;
      }
      bool wake;
      {
        std::lock_guard lock(mutex_);
        const bool was_throttled = c->unsent >= high_water_;
        c->unsent -= sent;
        c->bytes_sent += sent;
        if (error == EAGAIN) {
          c->sender = Sender::kParked;
        } else if (error == 0 && !c->inbox.empty() && !c->failed) {
          queue(*c);  // behind the others, so one busy client cannot keep a worker
        } else {
          if (error != 0) fail(*c, "send", error, ctx);
          c->sender = Sender::kIdle;
        }
        wake = c->sender == Sender::kParked || (was_throttled && c->unsent < high_water_) ||
               (c->sender == Sender::kIdle && (c->failed || c->peer_done));
      }
      if (wake) eventfd_write(wake_.get(), 1);
    }
  }

  // Sends the rest of the outbox. 0 when all is sent, EAGAIN when the socket is full, or errno.
  static int send_outbox(Connection& c) {
    while (c.sent < c.outbox.size()) {
      const ssize_t n =
          ::send(c.fd.get(), c.outbox.data() + c.sent, c.outbox.size() - c.sent, MSG_NOSIGNAL);
      if (n >= 0) {
        c.sent += static_cast<std::size_t>(n);
      } else if (const ErrnoClass kind = classify_errno(errno); kind != ErrnoClass::kRetry) {
        return kind == ErrnoClass::kWouldBlock ? EAGAIN : errno;
      }
    }
    return 0;
  }

  // Called with mutex_ held.
  void queue(Connection& c) {
    c.sender = Sender::kQueued;
    jobs_.push_back(&c);
    work_ready_.notify_one();
  }
  void fail(Connection& c, const char* call, int error, const ServerContext& ctx) {
    c.failed = true;
    c.admission.mark_failed();  // counted once, when the reactor closes it
    const ErrnoClass kind = classify_errno(error);
    if (kind == ErrnoClass::kPeerGone || kind == ErrnoClass::kConnectionAborted) {
      ctx.log->debug("fd {}: {}: {}", c.fd.get(), call, errno_name(error));
    } else {
      ctx.log->warn("fd {}: {}: {} ({})", c.fd.get(), call, std::strerror(error),
                    errno_name(error));
    }
  }

  void arm(int fd, bool read, bool write) {
    if (read) FD_SET(fd, &read_set_);
    if (write) FD_SET(fd, &write_set_);
    if (read || write) max_fd_ = std::max(max_fd_, fd);
  }

  Options options_;
  std::size_t high_water_ = 0;
  Fd wake_;  // eventfd: workers wake the reactor when a connection needs its attention
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  SelectAdmission admission_;                             // FD_SETSIZE only
  std::vector<std::unique_ptr<Connection>> connections_;  // the reactor's; stable addresses
  fd_set read_set_{};
  fd_set write_set_{};
  int max_fd_ = -1;
  std::array<char, kScratchSize> scratch_{};
  std::mutex mutex_;  // guards jobs_, stopping_ and every Connection's (shared) fields
  std::condition_variable work_ready_;
  std::deque<Connection*> jobs_;
  bool stopping_ = false;
};

}  // namespace

ECHOD_PLUGIN(SelectPoolModel, "select-pool",
             "select() reactor thread accepts and receives, a worker pool sends, in order",
             echod::kCapConcurrent | echod::kCapMultiThreaded)
