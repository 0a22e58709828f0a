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

// One client. The reactor thread owns it (creates, reads, closes); fields marked (shared) are
// guarded by the model's mutex_; `outbox` and `sent` belong to whoever holds the sending side.
struct Connection {
  explicit Connection(Accepted accepted)
      : fd(std::move(accepted.socket)), admission(std::move(accepted.admission)) {}
  Fd fd;
  Admission admission;            // its place under the endpoint's caps
  std::vector<char> inbox;        // (shared) received, not yet taken by a worker
  std::size_t unsent = 0;         // (shared) bytes of inbox and outbox not yet sent
  Sender sender = Sender::kIdle;  // (shared)
  bool peer_done = false;         // (shared) the peer shut down its sending side
  bool failed = false;            // (shared) reset or error: close without sending the rest
  std::vector<char> outbox;       // taken from inbox, being sent
  std::size_t sent = 0;           // bytes at the front of outbox already sent
};

class SelectPoolModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("select-pool.threads", po::value<int>()->default_value(defaults.threads),
         "worker threads that send (1-256); one select() thread accepts and receives");
    // clang-format on
  }

  explicit SelectPoolModel(const po::variables_map& settings)
      : options_{settings["select-pool.threads"].as<int>()} {
    if (options_.threads < 1 || options_.threads > 256) {
      throw std::invalid_argument("select-pool.threads must be between 1 and 256");
    }
  }

  // Starts the workers, runs the reactor until stop, then stops and joins the workers before
  // closing the connections they may still hold.
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
    connections_.clear();  // closes every client
    return result;
  }

 private:
  // The reactor: watches stop_fd, the wake-up eventfd, the listeners, every connection that
  // may read (below the high-water mark) and every parked one for writability.
  int serve(const ServerContext& ctx) {
    std::vector<int> fixed_fds(ctx.listen_fds.begin(), ctx.listen_fds.end());
    fixed_fds.insert(fixed_fds.end(), {ctx.stop_fd, wake_.get()});
    if (const int error = check_fd_set_room(fixed_fds, "select-pool", *ctx.log)) return error;
    for (int fd : ctx.listen_fds) {
      acceptors_.push_back(std::make_unique<Acceptor>(fd, ctx));
    }

    Clock::time_point resume_accepting;  // while shedding load, listeners are muted until then
    for (;;) {
      const auto now = Clock::now();
      const bool accepting = now >= resume_accepting;
      FD_ZERO(&read_set_);
      FD_ZERO(&write_set_);
      max_fd_ = -1;
      arm(ctx.stop_fd, true, false);
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
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(resume_accepting - now);
      const long wait_ms = std::max<long>(wait.count(), 0);
      timeval timeout{wait_ms / 1000, (wait_ms % 1000) * 1000};
      if (::select(max_fd_ + 1, &read_set_, &write_set_, nullptr, accepting ? nullptr : &timeout) <
          0) {
        if (errno == EINTR) continue;
        return log_call_failure(*ctx.log, "select", errno);
      }
      if (FD_ISSET(ctx.stop_fd, &read_set_)) return 0;
      eventfd_t wakeups;
      if (FD_ISSET(wake_.get(), &read_set_)) eventfd_read(wake_.get(), &wakeups);
      for (auto& c : connections_)
        on_ready(*c, ctx);
      close_finished(ctx);
      // Accept last: a descriptor closed above and reused now must not inherit its readiness.
      for (auto& acceptor : acceptors_) {
        if (FD_ISSET(acceptor->listen_fd(), &read_set_) && !accept_ready(*acceptor, ctx))
          resume_accepting = Clock::now() + std::chrono::milliseconds(kAcceptBackoffMs);
      }
    }
  }

  // Takes the pending connections (a bounded batch per wakeup) that select() can watch;
  // refused ones close at once. False: pause accepting.
  bool accept_ready(Acceptor& acceptor, const ServerContext& ctx) {
    return acceptor.accept_batch(kAcceptBatch, [&](Accepted accepted) {
      if (!admission_.admit(accepted.fd(), connections_.size(), *ctx.log)) return;
      ctx.log->debug("fd {}: accepted", accepted.fd());
      connections_.push_back(std::make_unique<Connection>(std::move(accepted)));
    });
  }

  // Gives a writable parked connection back to the workers; receives once into its inbox.
  void on_ready(Connection& c, const ServerContext& ctx) {
    const int fd = c.fd.get();
    if (!FD_ISSET(fd, &read_set_) && !FD_ISSET(fd, &write_set_)) return;
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
      if (done) ctx.log->debug("fd {}: closed", c->fd.get());
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
