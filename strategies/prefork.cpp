// prefork: prefork.workers processes forked up front all accept on the one listener, each
// serving one client at a time with the blocking echo loop; the parent only respawns workers
// that die. No fork per connection, but only `workers` clients are served at once: the next
// ones wait in the listen backlog until a worker is free, so it loses to any model without a
// cap as soon as clients outnumber workers. An accept lock lets one idle worker at a time wait
// on the listener; prefork.accept-lock=none lets them all wait and race (the thundering herd).
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/blocking_echo.hpp"
#include "echod/process.hpp"
#include "echod/server_model.hpp"
#include "echod/stop.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

struct Options {
  int workers = 10;
  std::string accept_lock = "fcntl";
};

// How long workers get to close their connection after a stop before they are SIGKILLed.
constexpr std::chrono::milliseconds kChildStopGrace{1000};
// A worker that dies younger than this is respawned only after this long, so a worker that
// cannot start does not become a fork loop.
constexpr std::chrono::milliseconds kRespawnDelay{1000};

class PreforkModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("prefork.workers", po::value<int>()->default_value(defaults.workers),
         "worker processes = clients served at once (1-65536); more wait in the listen backlog")
        ("prefork.accept-lock", po::value<std::string>()->default_value(defaults.accept_lock),
         "how idle workers take turns at accept: fcntl (record lock), flock, or none (all wait "
         "on the listener and race: the thundering herd)");
    // clang-format on
  }

  explicit PreforkModel(const po::variables_map& settings)
      : options_{settings["prefork.workers"].as<int>(),
                 settings["prefork.accept-lock"].as<std::string>()} {
    if (options_.workers < 1 || options_.workers > 65536) {
      throw std::invalid_argument("prefork.workers must be between 1 and 65536");
    }
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
  // Parent: keeps a worker in every scoreboard slot until a stop, then reaps them all.
  int serve(const ServerContext& ctx) {
    if (options_.accept_lock != "none") {
      lock_.emplace(options_.accept_lock == "fcntl" ? ProcessAcceptLock::Kind::kFcntl
                                                    : ProcessAcceptLock::Kind::kFlock);
    }
    Scoreboard board(static_cast<std::size_t>(options_.workers));
    std::vector<pid_t> pids(board.size(), 0);  // the worker in each slot; 0: none
    ChildProcesses workers(ctx.log);
    ctx.log->info("starting {} workers, accept lock: {}", options_.workers, options_.accept_lock);
    auto next_spawn = Clock::now();
    for (;;) {
      for (std::size_t slot = 0; slot < pids.size() && Clock::now() >= next_spawn; ++slot) {
        if (pids[slot] != 0) continue;
        if (stop_requested(ctx.stop_fd)) break;
        pids[slot] = workers.spawn([&] { return work(ctx, board, slot); });
        if (pids[slot] < 0) {
          pids[slot] = 0;
          ctx.log->warn("fork: {}; retrying in {} ms", std::strerror(errno), kRespawnDelay.count());
          next_spawn = Clock::now() + kRespawnDelay;
        }
      }
      const int timeout = workers.count() < pids.size() ? until(next_spawn) : -1;
      pollfd pfds[2] = {{ctx.stop_fd, POLLIN, 0}, {workers.exit_fd(), POLLIN, 0}};
      if (::poll(pfds, 2, timeout) < 0 && errno != EINTR) {
        ctx.log->error("poll: {}", std::strerror(errno));
        if (!sleep_unless_stopped(ctx.stop_fd, kAcceptBackoffMs)) break;
      }
      // A terminal's Ctrl-C signals the whole process group: workers dying of it are no
      // reason to respawn, so a stop is checked before reaping.
      if (pfds[0].revents != 0 || stop_requested(ctx.stop_fd)) break;
      if (pfds[1].revents == 0) continue;
      for (const auto& exit : workers.reap()) {
        const auto slot =
            static_cast<std::size_t>(std::find(pids.begin(), pids.end(), exit.pid) - pids.begin());
        pids[slot] = 0;
        board.clear(slot);  // it may have died busy
        ctx.endpoint->release_owned_by(exit.pid);
        const bool too_soon = exit.lifetime < kRespawnDelay;
        if (too_soon) next_spawn = Clock::now() + kRespawnDelay;
        ctx.log->warn("worker {} {}; respawning it{}", exit.pid, describe_exit(exit.status),
                      too_soon ? " in 1 s (it died young)" : "");
      }
    }
    // Busy workers see stop_fd in serve_blocking and close their client. Idle ones hold no
    // client: SIGTERM (their default action) ends them at once, instead of one after another
    // as each gets the lock and sees the stop.
    for (std::size_t slot = 0; slot < pids.size(); ++slot) {
      if (pids[slot] != 0 && !board.busy(slot)) ::kill(pids[slot], SIGTERM);
    }
    workers.stop_all(std::max(kChildStopGrace, ctx.endpoint->finish_grace()));
    lock_.reset();
    return 0;
  }

  // Worker: take the lock, accept one connection, let the lock go, echo it, repeat.
  int work(const ServerContext& ctx, Scoreboard& board, std::size_t slot) {
    if (lock_) lock_->open_in_child();
    Acceptor acceptor(ctx.listen_fds.front(), ctx);
    for (;;) {
      if (lock_) lock_->acquire();
      // Exiting while holding the lock is fine: the kernel drops it with the process.
      if (wait_ready(acceptor.listen_fd(), POLLIN, ctx.stop_fd) == Wait::kStopped) return 0;
      auto [status, connection] = acceptor.accept();
      if (lock_) lock_->release();
      if (status == Acceptor::Status::kAccepted) {
        ctx.log->debug("fd {}: accepted by worker {}", connection.fd(), ::getpid());
        log_load(ctx, board.mark(slot, true));
        const ServeEnd end = serve_blocking(std::move(connection), ctx);
        if (end == ServeEnd::kStopped) return 0;
        log_load(ctx, board.mark(slot, false));
      } else if (status != Acceptor::Status::kWouldBlock) {  // kWouldBlock: another won the race
        if (!sleep_unless_stopped(ctx.stop_fd, kAcceptBackoffMs)) return 0;
      }
    }
  }

  // Twice per burst of load, not once per connection.
  void log_load(const ServerContext& ctx, Scoreboard::Load load) const {
    if (load == Scoreboard::Load::kFull) {
      ctx.log->info("all {} workers busy: new clients wait in the listen backlog",
                    options_.workers);
    } else if (load == Scoreboard::Load::kEased) {
      ctx.log->info("load eased: at most half of the {} workers busy", options_.workers);
    }
  }

  static int until(Clock::time_point when) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(when - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
  }

  Options options_;
  std::optional<ProcessAcceptLock> lock_;  // created in serve(); each worker uses its own copy
};

}  // namespace

ECHOD_PLUGIN(PreforkModel, "prefork",
             "blocking, prefork.workers processes accepting on one listener (with an accept lock)",
             echod::kCapConcurrent | echod::kCapForks)
