// Boost.Asio plumbing shared by the models built on it (asio, coro): core's listeners and stop
// descriptor adopted as Asio objects, a registry of live connections so that a stop can close
// them all, and one io_context run on N threads until it runs out of work. Header-only, so the
// SDK library does not depend on Asio. Include <utility> before this header (Boost 1.74's
// asio/awaitable.hpp uses std::exchange without including it).
#pragma once

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <mutex>
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
#include "echod/errno_policy.hpp"
#include "echod/fd.hpp"
#include "echod/server_model.hpp"

namespace echod::asio_support {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// Connections a stop must close. A registered socket must be used only on its own executor
// (its strand): close_all() posts each close there, so no socket is touched by two threads.
class LiveSockets {
 public:
  // Keeps a socket registered while it lives; declare it after the socket it guards. False if
  // the server was already stopping: then serve nothing and let the socket close.
  class Entry {
   public:
    Entry(LiveSockets& live, tcp::socket& socket) : live_(live), socket_(&socket) {
      std::lock_guard lock(live_.mutex_);
      added_ = !live_.closing_ && live_.sockets_.insert(socket_).second;
    }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    ~Entry() {
      if (!added_) return;
      std::lock_guard lock(live_.mutex_);
      live_.sockets_.erase(socket_);
    }
    explicit operator bool() const noexcept { return added_; }

   private:
    LiveSockets& live_;
    tcp::socket* socket_;
    bool added_ = false;
  };

  // Refuses new entries from now on and closes every registered socket on its executor; their
  // pending operations complete with operation_aborted.
  void close_all() {
    std::lock_guard lock(mutex_);
    closing_ = true;
    for (tcp::socket* socket : sockets_) {
      // Nothing is added after closing_, so an address still registered is the same socket.
      asio::post(socket->get_executor(), [this, socket] {
        std::lock_guard lock(mutex_);
        error_code ignored;
        if (sockets_.count(socket) != 0) socket->close(ignored);
      });
    }
  }

 private:
  std::mutex mutex_;
  bool closing_ = false;
  std::unordered_set<tcp::socket*> sockets_;
};

// Core's listeners and stop descriptor as Asio objects, served by one io_context on `threads`
// threads. Accepting and the stop run on one strand (`control`); each connection gets a strand
// of its own when threads > 1. Owned by a model's run(); outlives every handler.
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
    tcp::acceptor socket;  // a duplicate of core's listener, only waited on for readability
    Acceptor acceptor;     // accept4 with core's errno policy and EMFILE spare descriptor
    asio::steady_timer backoff;
    tcp protocol = tcp::v4();
  };

  Loop(const ServerContext& context, int threads)
      : ctx(context), io(threads), control_(io.get_executor()), stop_(control_), threads_(threads) {
    adopt_copy(stop_, ctx.stop_fd);
    for (int fd : ctx.listen_fds)
      listeners.push_back(std::make_unique<Listener>(*this, fd));
  }

  // Takes up to a batch of pending connections (so a connect storm cannot starve the clients
  // already served) and calls serve(tcp::socket) for each. False when out of descriptors or
  // failing (logged by Acceptor): the caller waits on `backoff` for kAcceptBackoffMs.
  template <typename Serve>
  bool accept_pending(Listener& listener, Serve&& serve) {
    for (int taken = 0; taken < 128; ++taken) {
      auto [status, connection] = listener.acceptor.accept();
      if (status == Acceptor::Status::kWouldBlock) return true;
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
        serve(std::move(socket));
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

  // Serves until stop_fd is readable, then closes the listeners and every live connection and
  // lets the io_context run out of work on all threads (the caller's among them); joins them.
  int run() {
    stop_.async_wait(asio::posix::descriptor_base::wait_read, [this](error_code ec) {
      if (ec) ctx.log->error("waiting for stop: {}", ec.message());
      for (auto& listener : listeners) {
        listener->socket.close(ec);
        listener->backoff.cancel();
      }
      stop_.close(ec);
      live.close_all();
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
    return 0;
  }

  const ServerContext& ctx;
  asio::io_context io;
  std::vector<std::unique_ptr<Listener>> listeners;
  LiveSockets live;

 private:
  // One io_context shared by all threads, not one per thread: any idle thread takes any ready
  // connection, so one busy client cannot hold back the others pinned to its thread. A session
  // has one operation in flight at a time, which alone serialises its handlers, but the stop's
  // close comes from another thread: a strand per connection orders it after them. With one
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
  asio::posix::stream_descriptor stop_;
  int threads_;
};

// Runs a model on a Loop: start(loop) begins accepting on loop.listeners, then the loop serves
// until stop. Returns 0, or an errno value after logging why the loop could not be set up.
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
