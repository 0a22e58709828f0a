// Boost.Asio plumbing shared by the models built on it (asio, coro): core's listeners, drain and
// stop descriptors adopted as Asio objects; one Connection per client that carries the endpoint's
// promises (its place under the caps, a lazy idle timer, byte counts, the hand-over to a Finisher
// at a stop); and one io_context run on N threads until it runs out of work. Header-only, so the
// SDK library does not depend on Asio. Include <utility> before this header (Boost 1.74's
// asio/awaitable.hpp uses std::exchange without including it).
#pragma once

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "echod/acceptor.hpp"
#include "echod/endpoint.hpp"
#include "echod/errno_policy.hpp"
#include "echod/fd.hpp"
#include "echod/server_model.hpp"

namespace echod::asio_support {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

class Loop;

// One client of a Loop: its socket and place under the caps, enrolled with the loop so that a
// drain waits for it and a stop finishes it, its idle clock and its byte counts. A model's
// session drives the echo through it. Every member is used on the socket's executor (the
// connection's strand) only. Held by shared_ptr: the idle timer's handler keeps it alive.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket client, Admission admission, Loop& loop);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // Adds the byte counts to the stop summary and leaves the loop (the last to leave a drain
  // ends it).
  virtual ~Connection();

  tcp::socket socket;

  // False if the loop was already stopping: serve nothing, let the socket close.
  [[nodiscard]] bool enrolled() const noexcept { return enrolled_; }
  // Starts the idle timer (if the endpoint has an idle timeout). Call once, when serving starts.
  void watch_idle();

  // The stop asked this connection to finish: check before each wait for readability, and then
  // finish() instead of waiting.
  [[nodiscard]] bool stopping() const noexcept { return stopping_; }
  // An operation ended by the stop's cancellation (rather than by the peer or an error).
  [[nodiscard]] bool stopped(const error_code& ec) const noexcept {
    return stopping_ && ec == asio::error::operation_aborted;
  }

  // One nonblocking read; restarts the idle clock (one clock read) and counts the bytes.
  std::size_t read_some(std::span<char> into, error_code& ec) {
    const std::size_t size = socket.read_some(asio::buffer(into.data(), into.size()), ec);
    if (idle_timer_) last_active_ = Clock::now();
    bytes_in_ += size;
    return size;
  }
  // Around each write: while one is in flight the connection is not idle.
  void write_started() noexcept { writing_ = true; }
  void write_ended(std::size_t sent) noexcept {
    writing_ = false;
    bytes_out_ += sent;
  }

  // At a stop: hands the socket and the bytes read but not yet echoed to the loop's Finisher
  // (a lingering close at the drain's deadline, a plain close otherwise).
  void finish(std::span<const char> unsent);
  // The connection is over (EOF, error, idle close): logs why at the right level and closes;
  // an error counts in the endpoint's errors.
  void end(const error_code& ec);

 private:
  friend class Loop;
  // Posted by the loop's stop on this connection's executor: cancels the pending wait or write
  // so that the session's handler, seeing stopped(), hands the connection over.
  void on_stop();
  void arm_idle_timer(Clock::time_point at);
  void on_idle_timer(const error_code& ec);
  void close() noexcept;

  Loop& loop_;
  Admission admission_;
  bool enrolled_ = false;
  bool stopping_ = false;
  bool writing_ = false;
  bool closed_idle_ = false;
  // Lazy: the timer is armed once per timeout, not per message; when it fires, the connection
  // is closed only if last_active_ (stamped on every read) is a whole timeout ago.
  std::optional<asio::steady_timer> idle_timer_;
  Clock::time_point last_active_;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
};

// Core's listeners, drain and stop descriptors as Asio objects, served by one io_context on
// `threads` threads. Accepting, the drain and the stop run on one strand (`control`); each
// connection gets a strand of its own when threads > 1. Owned by a model's run(); outlives every
// handler.
class Loop {
 public:
  struct Listener {
    Listener(Loop& loop, int fd)
        : socket(loop.control_), acceptor(fd, loop.ctx), backoff(loop.control_) {
      sockaddr_storage address{};
      socklen_t size = sizeof address;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
      protocol = address.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
      adopt_copy(socket, fd, protocol);
    }
    // A duplicate of core's listener, only waited on for readability; closed by the drain.
    tcp::acceptor socket;
    Acceptor acceptor;  // accept4 with core's errno policy, caps and EMFILE spare descriptor
    asio::steady_timer backoff;
    tcp protocol = tcp::v4();
  };

  Loop(const ServerContext& context, int threads)
      : ctx(context),
        finisher_(*context.endpoint),
        io(threads),
        control_(io.get_executor()),
        drain_(control_),
        stop_(control_),
        threads_(threads) {
    adopt_copy(drain_, ctx.drain_fd);
    adopt_copy(stop_, ctx.stop_fd);
    for (int fd : ctx.listen_fds)
      listeners.push_back(std::make_unique<Listener>(*this, fd));
  }

  // Takes up to a batch of pending connections (so a connect storm cannot starve the clients
  // already served) and calls serve(tcp::socket, Admission) for each. False when accepting must
  // pause (out of descriptors or failing, logged by Acceptor: wait on `backoff`, armed for
  // kAcceptBackoffMs) or end (the drain closed the listener: listener.socket is closed).
  // Runs on the control strand.
  template <typename Serve>
  bool accept_pending(Listener& listener, Serve&& serve) {
    for (int taken = 0; taken < kAcceptBatch; ++taken) {
      auto [status, connection] = listener.acceptor.accept();
      if (status == Acceptor::Status::kWouldBlock) return true;
      if (status == Acceptor::Status::kClosed) {
        begin_drain();
        return false;
      }
      if (status != Acceptor::Status::kAccepted) {
        listener.backoff.expires_after(std::chrono::milliseconds(kAcceptBackoffMs));
        return false;
      }
      try {
        tcp::socket socket(connection_executor());
        error_code ec;
        socket.assign(listener.protocol, connection.fd(), ec);
        if (ec) {  // the reactor refused it (epoll_ctl); `connection` still owns and closes it
          ctx.log->warn("fd {}: epoll_ctl: {}", connection.fd(), ec.message());
          continue;
        }
        static_cast<void>(connection.socket.release());
        socket.non_blocking(true, ec);  // read_some then returns would_block instead of polling
        ctx.log->debug("fd {}: accepted", socket.native_handle());
        serve(std::move(socket), std::move(connection.admission));
      } catch (const std::exception& e) {
        // Out of memory is out of resources like EMFILE: drop this client (its socket closes
        // as it unwinds) and pause, but never leave the accept loop unarmed.
        ctx.log->warn("dropping a new connection: {}", e.what());
        listener.backoff.expires_after(std::chrono::milliseconds(kAcceptBackoffMs));
        return false;
      }
    }
    return true;
  }

  // Logs why a connection ends: EOF, a vanished peer and a stop at debug, anything else at warn.
  void log_end(tcp::socket& socket, const error_code& ec) const {
    const int fd = socket.native_handle();
    if (!socket.is_open() || ec == asio::error::operation_aborted) {
      ctx.log->debug("connection closed by stop");
    } else if (ec == asio::error::eof) {
      ctx.log->debug("fd {}: peer closed, echo complete", fd);
    } else if (ec.category() == boost::system::system_category() &&
               (classify_errno(ec.value()) == ErrnoClass::kPeerGone ||
                classify_errno(ec.value()) == ErrnoClass::kConnectionAborted)) {
      ctx.log->debug("fd {}: peer gone ({})", fd, errno_name(ec.value()));
    } else {
      ctx.log->warn("fd {}: {}", fd, ec.message());
    }
  }

  // Serves until the io_context runs out of work on all threads (the caller's among them), then
  // joins them and finishes the connections the stop handed over. The work ends when a drain
  // has closed the listeners and the last connection has left (the wait on stop_fd is then
  // cancelled), or when the stop has finished every connection.
  int run() {
    drain_.async_wait(asio::posix::descriptor_base::wait_read, [this](error_code ec) {
      if (ec != asio::error::operation_aborted) begin_drain();
    });
    stop_.async_wait(asio::posix::descriptor_base::wait_read, [this](error_code ec) {
      if (ec == asio::error::operation_aborted) return;  // the drain is complete
      if (ec) ctx.log->error("waiting for stop: {}", ec.message());
      begin_drain();
      stop_.close(ec);
      stop_connections();
    });
    std::vector<std::thread> others;
    others.reserve(static_cast<std::size_t>(threads_ - 1));  // so only std::thread can throw
    for (int i = 1; i < threads_; ++i) {
      try {
        others.emplace_back([this] { run_one_thread(); });
      } catch (const std::system_error& e) {  // the others serve; stop still ends them all
        ctx.log->warn("running on {} of {} threads: {}", i, threads_, e.what());
        break;
      }
    }
    run_one_thread();
    for (auto& thread : others)
      thread.join();
    finisher_.run();  // bounded by the endpoint's linger time, within its finish_grace()
    return 0;
  }

  const ServerContext& ctx;

 private:
  // Declared before `io`, so that they outlive any handler (and the connection it may own)
  // that the io_context destroys.
  std::mutex mutex_;  // guards connections_, draining_, stopping_
  std::unordered_set<Connection*> connections_;
  bool draining_ = false;
  bool stopping_ = false;
  std::mutex finisher_mutex_;
  Finisher finisher_;

 public:
  asio::io_context io;
  std::vector<std::unique_ptr<Listener>> listeners;

 private:
  friend class Connection;

  // A connection joins (false once stopping) and leaves; the last to leave a drain cancels the
  // wait on stop_fd, so that the io_context runs out of work. Any thread.
  bool enroll(Connection& connection) {
    std::lock_guard lock(mutex_);
    return !stopping_ && connections_.insert(&connection).second;
  }
  void leave(Connection& connection) {
    std::lock_guard lock(mutex_);
    connections_.erase(&connection);
    if (draining_ && connections_.empty()) asio::post(control_, [this] { close_stop(); });
  }

  // The first signal (or the listener found shut): accept no more and serve on. Runs on the
  // control strand.
  void begin_drain() {
    error_code ignored;
    for (auto& listener : listeners) {
      listener->socket.close(ignored);
      listener->backoff.cancel();
    }
    drain_.close(ignored);
    std::lock_guard lock(mutex_);
    if (draining_) return;
    draining_ = true;
    if (connections_.empty()) close_stop();
  }
  void close_stop() {
    error_code ignored;
    stop_.close(ignored);
  }

  // Asks every connection to finish, on its own executor. Runs on the control strand.
  void stop_connections() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (Connection* connection : connections_) {
      // One whose last owner is gone is in its destructor, waiting for mutex_ in leave().
      if (auto alive = connection->weak_from_this().lock()) {
        const auto executor = alive->socket.get_executor();
        asio::post(executor, [alive = std::move(alive)] { alive->on_stop(); });
      }
    }
  }

  // From any connection's executor; run() runs the Finisher once every thread is done.
  void hand_over(Fd socket, std::span<const char> unsent) noexcept {
    try {
      std::lock_guard lock(finisher_mutex_);
      finisher_.add(std::move(socket), unsent);
    } catch (const std::exception& e) {  // out of memory: this one just closes
      ctx.log->warn("closing a connection at stop: {}", e.what());
    }
  }

  // One io_context shared by all threads, not one per thread: any idle thread takes any ready
  // connection, so one busy client cannot hold back the others pinned to its thread. A session
  // has one operation in flight at a time, which alone serialises its handlers, but the stop and
  // the idle timer come from elsewhere: a strand per connection orders them after them. With one
  // thread there is nothing to order and the strand's locking is skipped.
  asio::any_io_executor connection_executor() {
    if (threads_ == 1) return io.get_executor();
    return asio::make_strand(io);
  }

  // A handler that throws (allocation failure) loses its connection, not the server.
  void run_one_thread() noexcept {
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        ctx.log->error("handler failed: {}", e.what());
      } catch (...) {
        ctx.log->error("handler failed: unknown exception");
      }
    }
  }

  // Asio closes what it holds, and core owns `fd`: give the object a duplicate.
  template <typename Object, typename... Protocol>
  static void adopt_copy(Object& object, int fd, const Protocol&... protocol) {
    Fd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!copy) throw std::system_error(errno, std::generic_category(), "dup");
    object.assign(protocol..., copy.get());
    static_cast<void>(copy.release());
  }

  asio::strand<asio::io_context::executor_type> control_;
  asio::posix::stream_descriptor drain_;
  asio::posix::stream_descriptor stop_;
  int threads_;
};

inline Connection::Connection(tcp::socket client, Admission admission, Loop& loop)
    : socket(std::move(client)), loop_(loop), admission_(std::move(admission)) {
  enrolled_ = loop_.enroll(*this);
}

inline Connection::~Connection() {
  loop_.ctx.endpoint->count_bytes(bytes_in_, bytes_out_);
  if (enrolled_) loop_.leave(*this);
}

inline void Connection::watch_idle() {
  const auto timeout = loop_.ctx.endpoint->limits().idle_timeout;
  if (timeout.count() <= 0) return;
  idle_timer_.emplace(socket.get_executor());
  last_active_ = Clock::now();
  arm_idle_timer(last_active_ + timeout);
}

inline void Connection::arm_idle_timer(Clock::time_point at) {
  idle_timer_->expires_at(at);
  idle_timer_->async_wait(
      [self = shared_from_this()](const error_code& ec) { self->on_idle_timer(ec); });
}

inline void Connection::on_idle_timer(const error_code& ec) {
  if (ec || stopping_ || !socket.is_open()) return;
  const auto timeout = loop_.ctx.endpoint->limits().idle_timeout;
  const auto now = Clock::now();
  if (writing_) {
    last_active_ = now;  // echoing to a slow reader is not idleness
  } else if (now - last_active_ >= timeout) {
    loop_.ctx.log->debug("fd {}: closed after {} s idle", socket.native_handle(),
                         std::chrono::duration<double>(timeout).count());
    loop_.ctx.endpoint->count_idle_close();
    closed_idle_ = true;
    close();  // the pending wait completes with operation_aborted; the session ends quietly
    return;
  }
  arm_idle_timer(last_active_ + timeout);
}

inline void Connection::on_stop() {
  stopping_ = true;
  if (idle_timer_) idle_timer_->cancel();
  error_code ignored;
  socket.cancel(ignored);
}

inline void Connection::finish(std::span<const char> unsent) {
  if (idle_timer_) idle_timer_->cancel();
  if (!socket.is_open()) return;  // closed already (idle)
  error_code ec;
  Fd released(socket.release(ec));
  if (ec) return close();
  loop_.hand_over(std::move(released), unsent);
  admission_.release();
}

inline void Connection::end(const error_code& ec) {
  if (idle_timer_) idle_timer_->cancel();
  if (!closed_idle_) loop_.log_end(socket, ec);
  // Anything but the peer's EOF or a cancellation (the idle close, a stop) is an I/O error.
  if (ec && ec != asio::error::eof && ec != asio::error::operation_aborted && !closed_idle_ &&
      socket.is_open()) {
    admission_.mark_failed();
  }
  close();
}

inline void Connection::close() noexcept {
  error_code ignored;
  socket.close(ignored);
  admission_.release();
}

// Runs a model on a Loop: start(loop) begins accepting on loop.listeners, then the loop serves
// until the drain or the stop is over. Returns 0, or an errno value after logging why the loop
// could not be set up.
template <typename Start>
int serve(const ServerContext& ctx, int threads, Start&& start) noexcept {
  try {
    Loop loop(ctx, threads);
    start(loop);
    return loop.run();
  } catch (const std::system_error& e) {
    ctx.log->error("{}", e.what());
    return e.code().value() != 0 ? e.code().value() : EIO;
  } catch (const boost::system::system_error& e) {
    ctx.log->error("{}", e.what());
    return e.code().value() != 0 ? e.code().value() : EIO;
  } catch (const std::exception& e) {
    ctx.log->error("{}", e.what());
    return ENOMEM;
  } catch (...) {
    ctx.log->error("unknown exception");
    return EIO;
  }
}

}  // namespace echod::asio_support
