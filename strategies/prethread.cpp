// prethread: a fixed pool of threads started up front; each accepts one connection on the shared
// listener, serves it to the end with the blocking echo loop, then accepts again. No thread is
// created per client, but only prethread.threads clients are served at once: the next ones wait
// in the listen backlog, so it loses when clients outnumber threads or linger idle.
#include <sys/eventfd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/blocking_echo.hpp"
#include "echod/errno_policy.hpp"
#include "echod/server_model.hpp"
#include "echod/stop.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;

struct Options {
  int threads = 40;                   // as in the classic prethreaded example
  std::string accept_lock = "mutex";  // "mutex" or "none"
};

class PrethreadModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("prethread.threads", po::value<int>()->default_value(defaults.threads),
         "threads started up front = clients served at once (1-65536); more wait in the listen "
         "backlog")
        ("prethread.accept-lock", po::value<std::string>()->default_value(defaults.accept_lock),
         "mutex: one thread at a time waits on the listener; none: all wait and race for each "
         "connection (the thundering herd)");
    // clang-format on
  }

  explicit PrethreadModel(const po::variables_map& settings)
      : options_{settings["prethread.threads"].as<int>(),
                 settings["prethread.accept-lock"].as<std::string>()} {
    if (options_.threads < 1 || options_.threads > 65536) {
      throw std::invalid_argument("prethread.threads must be between 1 and 65536");
    }
    if (options_.accept_lock != "mutex" && options_.accept_lock != "none") {
      throw std::invalid_argument("prethread.accept-lock must be 'mutex' or 'none', not '" +
                                  options_.accept_lock + "'");
    }
  }

  // Starts the pool, waits for the stop, passes it on through quit_ and joins the pool. quit_
  // (rather than stop_fd itself) lets a pool that could not be started completely be stopped.
  int run(const ServerContext& ctx) noexcept override {
    quit_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!quit_) return log_call_failure(*ctx.log, "eventfd", errno);
    acceptor_.emplace(ctx.listen_fds.front(), ctx);
    std::vector<std::thread> pool;
    int result = 0;
    try {
      pool.reserve(static_cast<std::size_t>(options_.threads));
      while (pool.size() < pool.capacity())
        pool.emplace_back([this, &ctx] { work(ctx); });
    } catch (const std::system_error& e) {
      result = log_call_failure(*ctx.log, "starting the thread pool", e.code().value());
    } catch (...) {  // bad_alloc from reserve
      result = log_call_failure(*ctx.log, "starting the thread pool", ENOMEM);
    }
    if (result == 0) {
      while (sleep_unless_stopped(ctx.stop_fd, -1)) {
      }
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(quit_.get(), &one, sizeof one);  // stays readable
    for (auto& thread : pool)
      thread.join();
    acceptor_.reset();
    return result;
  }

 private:
  // One pool thread: accept, serve until the peer leaves, repeat until quit_.
  void work(const ServerContext& ctx) {
    while (Accepted connection = next_connection(ctx)) {
      note_busy(ctx, +1);
      if (serve_blocking(std::move(connection), ctx, quit_.get()) != ServeEnd::kStopped) {
        note_busy(ctx, -1);
      }
    }
  }

  // Logs when the last idle thread takes a client and when load eases to half the pool again:
  // twice per burst, not once per connection. exchange(): one thread reports each change.
  void note_busy(const ServerContext& ctx, int change) {
    const int busy = busy_.fetch_add(change) + change;
    if (busy == options_.threads && !full_.exchange(true)) {
      ctx.log->info("all {} threads busy: new clients wait in the listen backlog", busy);
    } else if (2 * busy <= options_.threads && full_.exchange(false)) {
      ctx.log->info("load eased: {} of {} threads busy", busy, options_.threads);
    }
  }

  // Waits for the listener and takes one connection; an invalid Fd once quit_ is readable.
  // With the lock, a waiting thread blocks in the mutex; the holder passes quit_ on by
  // returning, so each waiter in turn sees it in its first poll.
  Accepted next_connection(const ServerContext& ctx) {
    const bool locked = options_.accept_lock == "mutex";
    std::unique_lock lock(accept_mutex_, std::defer_lock);
    if (locked) lock.lock();
    for (;;) {
      const Wait wait = wait_ready(acceptor_->listen_fd(), POLLIN, quit_.get());
      if (wait == Wait::kStopped) return {};
      if (wait != Wait::kReady) continue;  // poll failed (ENOMEM) and slept a back-off
      if (!locked) lock.lock();            // without the lock around waiting, around accept() alone
      auto [status, connection] = acceptor_->accept();
      if (!locked) lock.unlock();
      if (status == Acceptor::Status::kAccepted) {
        ctx.log->debug("fd {}: accepted", connection.fd());
        return std::move(connection);
      }
      // kWouldBlock: another thread won the race (accept-lock=none); wait again.
      if (status != Acceptor::Status::kWouldBlock &&
          !sleep_unless_stopped(quit_.get(), kAcceptBackoffMs)) {
        return {};
      }
    }
  }

  Options options_;
  Fd quit_;  // eventfd, readable once the pool must stop
  // One Acceptor for the pool: one spare descriptor for EMFILE, not one per thread (which
  // alone could use up a low descriptor limit). Used under accept_mutex_.
  std::optional<Acceptor> acceptor_;
  std::mutex accept_mutex_;        // around waiting + accept (accept-lock=mutex) or accept alone
  std::atomic<int> busy_{0};       // threads serving a client
  std::atomic<bool> full_{false};  // all were busy, and load has not eased to half since
};

}  // namespace

ECHOD_PLUGIN(PrethreadModel, "prethread",
             "blocking, a fixed pool of threads each accepting and serving one client at a time",
             echod::kCapConcurrent | echod::kCapMultiThreaded)
