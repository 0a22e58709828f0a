// prefork: a pool of worker processes that all accept on the one listener, each serving one
// client at a time with the blocking echo loop, grown and shrunk with load as Apache's prefork
// MPM does: prefork.start workers at start, then between prefork.min-spare and
// prefork.max-spare of them idle, never more than prefork.max. The parent accepts nothing: it
// reads who is busy from a scoreboard in shared memory, forks workers when spares run short,
// retires idle ones above max-spare (one per second) and replaces workers that die. No fork per
// connection, but past prefork.max busy workers the next clients wait in the listen backlog. An
// accept lock lets one idle worker at a time wait on the listener; prefork.accept-lock=none
// lets them all wait and race (the thundering herd).
//
// A worker that owns a client blocks SIGTERM, from just before its accept() until it has
// finished that client: the parent retires idle workers with SIGTERM, and a worker it took for
// idle may have just accepted. Such a worker serves its client to the end, then the pending
// SIGTERM ends it. So `kill WORKER` retires a worker gracefully; SIGKILL ends it at once.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/blocking_echo.hpp"
#include "echod/errno_policy.hpp"
#include "echod/process.hpp"
#include "echod/server_model.hpp"
#include "echod/spare_pool.hpp"
#include "echod/stop.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

struct Options {
  PoolSizing pool{5, 5, 10, 256};
  std::string accept_lock = "fcntl";
};

// How long workers get to close their connection after a stop before they are SIGKILLed.
constexpr std::chrono::milliseconds kChildStopGrace{1000};
// A worker that dies younger than this delays the next fork by this long, so a worker that
// cannot start does not become a fork loop.
constexpr std::chrono::milliseconds kRespawnDelay{1000};
// A worker taking a client wakes the parent (to look at the spares) at most this often.
constexpr std::chrono::milliseconds kWakeGap{10};

int until(Clock::time_point when) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(when - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

class PreforkModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    declare_pool_options(options, "prefork", "worker processes", defaults.pool);
    // clang-format off
    options.add_options()
        ("prefork.accept-lock", po::value<std::string>()->default_value(defaults.accept_lock),
         "how idle workers take turns at accept: fcntl (record lock), flock, or none (all wait "
         "on the listener and race: the thundering herd)");
    // clang-format on
  }

  explicit PreforkModel(const po::variables_map& settings)
      : options_{read_pool_options(settings, "prefork"),
                 settings["prefork.accept-lock"].as<std::string>()} {
    if (options_.accept_lock != "fcntl" && options_.accept_lock != "flock" &&
        options_.accept_lock != "none") {
      throw std::invalid_argument("prefork.accept-lock must be fcntl, flock or none, not '" +
                                  options_.accept_lock + "'");
    }
  }

  int run(const ServerContext& ctx) noexcept override {
    try {
      return serve(ctx);
    } catch (const std::system_error& e) {  // lock file, scoreboard or signal set-up failed
      ctx.log->error("prefork: {}", e.what());
      return e.code().value();
    } catch (const std::exception& e) {  // allocation failed
      ctx.log->error("prefork: {}", e.what());
      return ENOMEM;
    }
  }

 private:
  // The parent's view of the pool. Owned by the parent (a worker's copy is never used).
  struct Pool {
    Scoreboard board;
    std::vector<pid_t> pids;  // the worker in each scoreboard slot; 0: none
    std::unordered_set<pid_t> retiring;
    ChildProcesses workers;
    Fd wake;  // eventfd: a worker took a client
    Pool(std::size_t slots, std::shared_ptr<spdlog::logger> log)
        : board(slots), pids(slots, 0), workers(std::move(log)) {}
  };

  // Parent: keeps the pool sized to the load until a drain, then waits for the busy workers.
  int serve(const ServerContext& ctx) {
    if (options_.accept_lock != "none") {
      lock_.emplace(options_.accept_lock == "fcntl" ? ProcessAcceptLock::Kind::kFcntl
                                                    : ProcessAcceptLock::Kind::kFlock);
    }
    const PoolSizing& sizing = options_.pool;
    Pool pool(static_cast<std::size_t>(sizing.max), ctx.log);
    pool.wake = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!pool.wake) return log_call_failure(*ctx.log, "eventfd", errno);
    ctx.log->info("starting {} workers (spare {}-{}, at most {}), accept lock: {}", sizing.start,
                  sizing.min_spare, sizing.max_spare, sizing.max, options_.accept_lock);
    SparePolicy policy(sizing);
    int owed = sizing.start;  // workers to fork besides what the policy asks for
    auto hold_until = Clock::now();
    auto next_look = Clock::now();
    auto wake_from = Clock::now();
    for (;;) {
      const auto now = Clock::now();
      if (now >= next_look && now < hold_until) {
        next_look = hold_until;  // forking failed or a worker died young: wait
      } else if (now >= next_look) {
        const auto [workers, idle] = census(pool);
        const SparePolicy::Plan plan = policy.plan(workers, idle, now);
        if (plan.retire_one) retire_one(pool, ctx);
        const int spawn = std::min(std::max(plan.spawn, owed), sizing.max - workers);
        owed = 0;
        if (spawn > 0 && !spawn_workers(pool, ctx, spawn)) {
          hold_until = Clock::now() + kRespawnDelay;
        }
        next_look = now + plan.next_look;
        wake_from = now + kWakeGap;
      }
      // The wake descriptor is watched only kWakeGap after a look: under a high connection
      // rate the parent looks at most that often instead of once per connection.
      const bool watch_wake = Clock::now() >= wake_from;
      const int timeout = until(watch_wake ? next_look : std::min(next_look, wake_from));
      pollfd pfds[3] = {{ctx.drain_fd, POLLIN, 0},
                        {pool.workers.exit_fd(), POLLIN, 0},
                        {watch_wake ? pool.wake.get() : -1, POLLIN, 0}};
      if (::poll(pfds, 3, timeout) < 0) {
        if (errno == EINTR) continue;
        log_call_failure(*ctx.log, "poll", errno);
        if (!sleep_unless_stopped(ctx.drain_fd, kAcceptBackoffMs)) break;
        continue;
      }
      // A terminal's Ctrl-C or a group SIGTERM reaches the workers too: workers dying of it are
      // no reason to respawn, so a drain is checked before reaping.
      if (pfds[0].revents != 0 || stop_requested(ctx.drain_fd)) break;
      if (pfds[2].revents != 0) {
        std::uint64_t count;
        [[maybe_unused]] ssize_t n = ::read(pool.wake.get(), &count, sizeof count);
        next_look = Clock::now();
      }
      if (pfds[1].revents != 0) {
        const Reaped reaped = reap(pool, ctx);
        owed += reaped.unexpected;
        if (reaped.died_young) hold_until = Clock::now() + kRespawnDelay;
        next_look = Clock::now();
      }
    }
    drain(pool, ctx);
    lock_.reset();
    return 0;
  }

  // Workers running and not retiring, and how many of them are idle.
  static std::pair<int, int> census(const Pool& pool) {
    int workers = 0;
    int idle = 0;
    for (std::size_t slot = 0; slot < pool.pids.size(); ++slot) {
      if (pool.pids[slot] == 0 || pool.retiring.count(pool.pids[slot]) != 0) continue;
      ++workers;
      if (!pool.board.busy(slot)) ++idle;
    }
    return {workers, idle};
  }

  // Forks `count` workers into free slots; false if fork failed (the caller backs off).
  bool spawn_workers(Pool& pool, const ServerContext& ctx, int count) {
    for (std::size_t slot = 0; slot < pool.pids.size() && count > 0; ++slot) {
      if (pool.pids[slot] != 0) continue;
      pool.board.clear(slot);  // its last worker may have died busy
      const pid_t pid = pool.workers.spawn([&] { return work(ctx, pool, slot); });
      if (pid < 0) {
        ctx.log->warn("fork: {}; retrying in {} ms", std::strerror(errno), kRespawnDelay.count());
        return false;
      }
      pool.pids[slot] = pid;
      --count;
    }
    return true;
  }

  // SIGTERMs one idle worker. Safe even if it has just taken a client: see the file comment.
  static void retire_one(Pool& pool, const ServerContext& ctx) {
    for (std::size_t slot = pool.pids.size(); slot-- > 0;) {  // the newest slots first
      const pid_t pid = pool.pids[slot];
      if (pid == 0 || pool.board.busy(slot) || pool.retiring.count(pid) != 0) continue;
      if (::kill(pid, SIGTERM) == 0) {
        pool.retiring.insert(pid);
        ctx.log->debug("retiring idle worker {}", pid);
      }
      return;
    }
  }

  struct Reaped {
    int unexpected = 0;  // workers that died without being retired
    bool died_young = false;
  };

  Reaped reap(Pool& pool, const ServerContext& ctx) {
    Reaped reaped;
    for (const auto& exit : pool.workers.reap()) {
      const auto slot = static_cast<std::size_t>(
          std::find(pool.pids.begin(), pool.pids.end(), exit.pid) - pool.pids.begin());
      if (slot < pool.pids.size()) {
        pool.pids[slot] = 0;
        pool.board.clear(slot);  // it may have died busy
      }
      ctx.endpoint->release_owned_by(exit.pid);
      if (pool.retiring.erase(exit.pid) != 0) continue;  // retired: its SIGTERM was ours
      if (ctx.endpoint->draining()) continue;
      ++reaped.unexpected;
      const bool too_soon = exit.lifetime < kRespawnDelay;
      reaped.died_young = reaped.died_young || too_soon;
      ctx.log->warn("worker {} {}; respawning it{}", exit.pid, describe_exit(exit.status),
                    too_soon ? " in 1 s (it died young)" : "");
    }
    return reaped;
  }

  // A drain: idle workers end at once (SIGTERM; safe, see the file comment), busy ones serve
  // their client to the end and exit; returns once none is left. At the stop (the drain's
  // deadline or a second signal) busy workers finish their connection through serve_blocking;
  // those still running after the grace are killed.
  void drain(Pool& pool, const ServerContext& ctx) {
    for (std::size_t slot = 0; slot < pool.pids.size(); ++slot) {
      if (pool.pids[slot] != 0 && !pool.board.busy(slot)) ::kill(pool.pids[slot], SIGTERM);
    }
    while (pool.workers.count() > 0) {
      pollfd pfds[2] = {{ctx.stop_fd, POLLIN, 0}, {pool.workers.exit_fd(), POLLIN, 0}};
      if (::poll(pfds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        log_call_failure(*ctx.log, "poll", errno);
        if (!sleep_unless_stopped(ctx.stop_fd, kAcceptBackoffMs)) break;
        continue;
      }
      if (pfds[0].revents != 0) break;
      if (pfds[1].revents != 0) reap(pool, ctx);
    }
    pool.workers.stop_all(std::max(kChildStopGrace, ctx.endpoint->finish_grace()));
    for (std::size_t slot = 0; slot < pool.pids.size(); ++slot) {
      if (pool.pids[slot] != 0) ctx.endpoint->release_owned_by(pool.pids[slot]);
    }
  }

  // Worker: take the lock, wait for a client, accept it, let the lock go, echo it, repeat;
  // leave when the drain begins.
  int work(const ServerContext& ctx, Pool& pool, std::size_t slot) {
    if (lock_) lock_->open_in_child();
    Acceptor acceptor(ctx.listen_fds.front(), ctx);
    sigset_t sigterm;
    sigemptyset(&sigterm);
    sigaddset(&sigterm, SIGTERM);
    for (;;) {
      if (lock_) lock_->acquire();
      // Exiting while holding the lock is fine: the kernel drops it with the process.
      const Wait wait = wait_ready(acceptor.listen_fd(), POLLIN, ctx.drain_fd);
      if (wait == Wait::kStopped) return 0;
      if (wait != Wait::kReady) {  // kFailed: poll failed and already slept a back-off
        if (lock_) lock_->release();
        continue;
      }
      // Busy from before accept() until the client is done: a SIGTERM now waits (see top).
      ::sigprocmask(SIG_BLOCK, &sigterm, nullptr);
      log_load(ctx, pool.board.mark(slot, true));
      auto [status, connection] = acceptor.accept();
      if (lock_) lock_->release();
      if (status == Acceptor::Status::kAccepted) {
        const std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(pool.wake.get(), &one, sizeof one);
        ctx.log->debug("fd {}: accepted by worker {}", connection.fd(), ::getpid());
        if (serve_blocking(std::move(connection), ctx) == ServeEnd::kStopped) return 0;
      }
      log_load(ctx, pool.board.mark(slot, false));
      if (status == Acceptor::Status::kClosed || stop_requested(ctx.drain_fd)) return 0;
      ::sigprocmask(SIG_UNBLOCK, &sigterm, nullptr);  // a pending SIGTERM ends the worker here
      // kWouldBlock: another worker won the race (accept-lock=none).
      if (status == Acceptor::Status::kShed || status == Acceptor::Status::kFailed) {
        if (!sleep_unless_stopped(ctx.drain_fd, kAcceptBackoffMs)) return 0;
      }
    }
  }

  // Twice per burst of load, not once per connection.
  void log_load(const ServerContext& ctx, Scoreboard::Load load) const {
    if (load == Scoreboard::Load::kFull) {
      ctx.log->info("all {} workers busy (prefork.max): new clients wait in the listen backlog",
                    options_.pool.max);
    } else if (load == Scoreboard::Load::kEased) {
      ctx.log->info("load eased: at most half of the {} workers busy", options_.pool.max);
    }
  }

  Options options_;
  std::optional<ProcessAcceptLock> lock_;  // created in serve(); each worker uses its own copy
};

}  // namespace

ECHOD_PLUGIN(PreforkModel, "prefork",
             "blocking, a growing pool of worker processes accepting on one listener (with an "
             "accept lock)",
             echod::kCapConcurrent | echod::kCapForks)
