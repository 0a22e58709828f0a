// prethread: a pool of threads that each accept one connection on the shared listener, serve it
// to the end with the blocking echo loop, then accept again; grown and shrunk with load as
// Apache's worker MPM does with its threads: prethread.start threads at start, then between
// prethread.min-spare and prethread.max-spare of them idle, never more than prethread.max. The
// main thread accepts nothing: it counts the busy threads (an atomic), starts threads when
// spares run short, retires idle ones above max-spare (one per second) and joins every thread
// that ends. No thread is created per client, but past prethread.max busy threads the next
// clients wait in the listen backlog.
#include <sys/eventfd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
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
#include "echod/spare_pool.hpp"
#include "echod/stop.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

struct Options {
  PoolSizing pool{8, 8, 16, 256};
  std::string accept_lock = "mutex";  // "mutex" or "none"
};

// After a failed thread start, starting is tried again after this long.
constexpr std::chrono::milliseconds kRetryDelay{1000};
// A thread taking a client wakes the main thread (to look at the spares) at most this often.
constexpr std::chrono::milliseconds kWakeGap{10};
// Written to leave_ at a drain: more units than there can ever be threads, so every one leaves.
constexpr std::uint64_t kEveryone = std::uint64_t{1} << 40;

int until(Clock::time_point when) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(when - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

void signal_eventfd(const Fd& fd, std::uint64_t value = 1) noexcept {
  [[maybe_unused]] ssize_t n = ::write(fd.get(), &value, sizeof value);
}

class PrethreadModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    declare_pool_options(options, "prethread", "threads", defaults.pool);
    // clang-format off
    options.add_options()
        ("prethread.accept-lock", po::value<std::string>()->default_value(defaults.accept_lock),
         "mutex: one thread at a time waits on the listener; none: all wait and race for each "
         "connection (the thundering herd)");
    // clang-format on
  }

  explicit PrethreadModel(const po::variables_map& settings)
      : options_{read_pool_options(settings, "prethread"),
                 settings["prethread.accept-lock"].as<std::string>()} {
    if (options_.accept_lock != "mutex" && options_.accept_lock != "none") {
      throw std::invalid_argument("prethread.accept-lock must be 'mutex' or 'none', not '" +
                                  options_.accept_lock + "'");
    }
  }

  int run(const ServerContext& ctx) noexcept override {
    try {  // every allocation happens here, before the first thread starts
      slots_.resize(static_cast<std::size_t>(options_.pool.max));
      for (int i = options_.pool.max - 1; i >= 0; --i)
        free_slots_.push_back(i);
      finished_.reserve(slots_.size());
      reaped_.reserve(slots_.size());
    } catch (const std::exception& e) {
      ctx.log->error("prethread: {}", e.what());
      return ENOMEM;
    }
    for (Fd* fd : {&quit_, &done_, &wake_}) {
      *fd = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
      if (!*fd) return log_call_failure(*ctx.log, "eventfd", errno);
    }
    leave_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE));
    if (!leave_) return log_call_failure(*ctx.log, "eventfd", errno);
    acceptor_.emplace(ctx.listen_fds.front(), ctx);
    manage(ctx);
    drain(ctx);
    acceptor_.reset();
    return 0;
  }

 private:
  struct Finished {
    int slot;
    bool retired;  // it took a unit from leave_
  };

  // Main thread: keeps the pool sized to the load until a drain begins.
  void manage(const ServerContext& ctx) {
    const PoolSizing& sizing = options_.pool;
    ctx.log->info("starting {} threads (spare {}-{}, at most {}), accept lock: {}", sizing.start,
                  sizing.min_spare, sizing.max_spare, sizing.max, options_.accept_lock);
    SparePolicy policy(sizing);
    int owed = sizing.start;  // threads to start besides what the policy asks for
    auto hold_until = Clock::now();
    auto next_look = Clock::now();
    auto wake_from = Clock::now();
    for (;;) {
      const auto now = Clock::now();
      if (now >= next_look && now < hold_until) {
        next_look = hold_until;  // starting a thread failed: wait
      } else if (now >= next_look) {
        // Retiring threads are not counted: their unit in leave_ is on its way.
        const int workers = running() - retiring_;
        const int idle = std::max(0, workers - busy_.load());
        const SparePolicy::Plan plan = policy.plan(workers, idle, now);
        if (plan.retire_one) {
          ++retiring_;
          signal_eventfd(leave_);  // the first idle thread to see it leaves
        }
        const int spawn = std::min(std::max(plan.spawn, owed), sizing.max - workers);
        owed = 0;
        if (spawn > 0 && !start_threads(ctx, spawn)) hold_until = Clock::now() + kRetryDelay;
        next_look = now + plan.next_look;
        wake_from = now + kWakeGap;
      }
      // The wake descriptor is watched only kWakeGap after a look: under a high connection
      // rate the main thread looks at most that often instead of once per connection.
      const bool watch_wake = Clock::now() >= wake_from;
      const int timeout = until(watch_wake ? next_look : std::min(next_look, wake_from));
      pollfd pfds[3] = {{ctx.drain_fd, POLLIN, 0},
                        {done_.get(), POLLIN, 0},
                        {watch_wake ? wake_.get() : -1, POLLIN, 0}};
      if (::poll(pfds, 3, timeout) < 0) {
        if (errno == EINTR) continue;
        log_call_failure(*ctx.log, "poll", errno);
        if (!sleep_unless_stopped(ctx.drain_fd, kAcceptBackoffMs)) return;
        continue;
      }
      if (pfds[0].revents != 0) return;
      if (pfds[2].revents != 0) {
        std::uint64_t count;
        [[maybe_unused]] ssize_t n = ::read(wake_.get(), &count, sizeof count);
        next_look = Clock::now();
      }
      if (pfds[1].revents != 0) {
        owed += reap();
        next_look = Clock::now();
      }
    }
  }

  // A drain: idle threads leave at once (leave_ filled), busy ones serve their client to the
  // end and leave; returns once all are joined. At the stop (the drain's deadline or a second
  // signal) quit_ makes serving threads finish their connection; then every thread is joined.
  void drain(const ServerContext& ctx) {
    signal_eventfd(leave_, kEveryone);
    while (running() > 0) {
      const Wait wait = wait_ready(done_.get(), POLLIN, ctx.stop_fd);
      if (wait == Wait::kStopped) break;
      if (wait == Wait::kReady) reap();
    }
    signal_eventfd(quit_);  // stays readable
    for (auto& slot : slots_) {
      if (slot.joinable()) slot.join();
    }
  }

  [[nodiscard]] int running() const { return static_cast<int>(slots_.size() - free_slots_.size()); }

  // Starts `count` threads; false if the system refused one (the caller backs off).
  bool start_threads(const ServerContext& ctx, int count) {
    for (; count > 0 && !free_slots_.empty(); --count) {
      const int slot = free_slots_.back();
      try {
        slots_[static_cast<std::size_t>(slot)] =
            std::thread([this, &ctx, slot] { work(ctx, slot); });
      } catch (const std::system_error& e) {
        ctx.log->warn("starting a thread: {}; retrying in {} ms", e.what(), kRetryDelay.count());
        return false;
      }
      free_slots_.pop_back();
    }
    return true;
  }

  // Joins every thread that reported back and frees its slot; returns how many of them ended
  // without being retired (to be replaced). Main thread only.
  int reap() {
    std::uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(done_.get(), &count, sizeof count);
    {
      std::lock_guard lock(finished_mutex_);
      reaped_.swap(finished_);  // both keep their reserved capacity
    }
    int unexpected = 0;
    for (const Finished& finished : reaped_) {
      slots_[static_cast<std::size_t>(finished.slot)].join();
      free_slots_.push_back(finished.slot);
      if (finished.retired) {
        --retiring_;
      } else {
        ++unexpected;
      }
    }
    reaped_.clear();
    return unexpected;
  }

  // One pool thread: accept, serve until the peer leaves, repeat until told to leave, the
  // listener is shut (a drain) or a stop; then report back to be joined.
  void work(const ServerContext& ctx, int slot) {
    bool retired = false;
    while (Accepted connection = next_connection(ctx, retired)) {
      note_busy(ctx, +1);
      signal_eventfd(wake_);
      const ServeEnd end = serve_blocking(std::move(connection), ctx, quit_.get());
      note_busy(ctx, -1);
      if (end == ServeEnd::kStopped) break;
    }
    {
      std::lock_guard lock(finished_mutex_);
      finished_.push_back({slot, retired});  // reserved: cannot throw
    }
    signal_eventfd(done_);
  }

  // Logs when the last thread the pool may have takes a client and when load eases to half of
  // that again: twice per burst, not once per connection. exchange(): one thread reports each.
  void note_busy(const ServerContext& ctx, int change) {
    const int busy = busy_.fetch_add(change) + change;
    const int max = options_.pool.max;
    if (busy == max && !full_.exchange(true)) {
      ctx.log->info("all {} threads busy (prethread.max): new clients wait in the listen backlog",
                    busy);
    } else if (2 * busy <= max && full_.exchange(false)) {
      ctx.log->info("load eased: {} of {} threads busy", busy, max);
    }
  }

  // Waits for the listener and takes one connection. An invalid one when this thread must
  // leave: it took a unit from leave_ (`retired`), or the listener was shut by a drain. With the
  // lock, a waiting thread blocks in the mutex; the holder passes leave_ on by returning, so each
  // waiter in turn sees it in its first poll.
  Accepted next_connection(const ServerContext& ctx, bool& retired) {
    const bool locked = options_.accept_lock == "mutex";
    std::unique_lock lock(accept_mutex_, std::defer_lock);
    if (locked) lock.lock();
    for (;;) {
      const Wait wait = wait_ready(acceptor_->listen_fd(), POLLIN, leave_.get());
      if (wait == Wait::kStopped) {
        std::uint64_t unit;
        if (::read(leave_.get(), &unit, sizeof unit) == sizeof unit) {
          retired = true;
          return {};
        }
        continue;  // another idle thread took it
      }
      if (wait != Wait::kReady) continue;  // kFailed: poll failed and already slept a back-off
      if (!locked) lock.lock();            // without the lock around waiting, around accept() alone
      auto [status, connection] = acceptor_->accept();
      if (!locked) lock.unlock();
      if (status == Acceptor::Status::kAccepted) {
        ctx.log->debug("fd {}: accepted", connection.fd());
        return std::move(connection);
      }
      if (status == Acceptor::Status::kClosed) return {};
      // kWouldBlock: another thread won the race (accept-lock=none): wait again at once.
      // Shed or failed: back off first (cut short if told to leave: the next wait sees it).
      if (status != Acceptor::Status::kWouldBlock)
        sleep_unless_stopped(leave_.get(), kAcceptBackoffMs);
    }
  }

  Options options_;
  Fd quit_;   // eventfd, readable once serving threads must stop (the stop)
  Fd leave_;  // semaphore eventfd: each unit makes one idle thread leave
  Fd done_;   // eventfd: a thread reported back
  Fd wake_;   // eventfd: a thread took a client
  // One Acceptor for the pool: one spare descriptor for EMFILE, not one per thread (which
  // alone could use up a low descriptor limit). Used under accept_mutex_.
  std::optional<Acceptor> acceptor_;
  std::mutex accept_mutex_;         // around waiting + accept (accept-lock=mutex) or accept alone
  std::atomic<int> busy_{0};        // threads serving a client
  std::atomic<bool> full_{false};   // all were busy, and load has not eased to half since
  std::vector<std::thread> slots_;  // main thread only; one per possible thread
  std::vector<int> free_slots_;     // main thread only
  int retiring_ = 0;                // main thread only: units in leave_ not yet reported back
  std::mutex finished_mutex_;       // guards finished_
  std::vector<Finished> finished_;  // threads that have returned, not yet joined
  std::vector<Finished> reaped_;    // main thread's copy of finished_
};

}  // namespace

ECHOD_PLUGIN(PrethreadModel, "prethread",
             "blocking, a growing pool of threads each accepting and serving one client at a time",
             echod::kCapConcurrent | echod::kCapMultiThreaded)
