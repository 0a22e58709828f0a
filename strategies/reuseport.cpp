// reuseport: N workers that share nothing. Core opens one SO_REUSEPORT listener per worker
// (kCapReusePort), the kernel spreads new connections over them, and each worker runs the epoll
// loop of model epoll (echod/epoll_loop.hpp) on its own listener: no accept lock, no shared
// queue, no thundering herd, one loop per core. reuseport.mode=threads runs the workers as
// threads of echod; reuseport.mode=processes forks them, so each has its own descriptor table
// and one echod can hold more connections than one process's descriptor limit. A worker
// process that dies is forked again on the same listener, which core keeps open meanwhile, so
// the connections the kernel queued on it wait instead of being reset. The caps and counters
// are the Endpoint's, in shared memory, so they count every worker together.
//
// reuseport.steer=hash (default) leaves the choice of listener to the kernel's hash of the
// connection's addresses and ports; steer=cpu attaches a classic BPF program
// (SO_ATTACH_REUSEPORT_CBPF) that picks the listener of the CPU the connection arrives on and
// pins worker i to CPU i, so a connection is served on the CPU that received it.
#include <linux/filter.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "echod/epoll_loop.hpp"
#include "echod/errno_policy.hpp"
#include "echod/options.hpp"
#include "echod/process.hpp"
#include "echod/server_model.hpp"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

namespace {

using namespace echod;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

constexpr int kMaxWorkers = 1024;  // core's signal handler shuts down at most this many listeners
// How long worker processes get to finish their connections after a stop before SIGKILL.
constexpr std::chrono::milliseconds kChildStopGrace{1000};
// A worker process that dies younger than this is forked again only this much later, so a
// worker that cannot start does not become a fork loop.
constexpr std::chrono::milliseconds kRespawnDelay{1000};

// The CPUs echod may run on: its affinity mask (taskset, a cgroup's cpuset), as Go's NumCPU
// and nproc count them; the online CPUs where the mask cannot be read. More workers than that
// only take turns on the same cores.
int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const long cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                                  : ::sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<int>(std::clamp<long>(cpus, 1, kMaxWorkers));
}

struct Options {
  int workers = usable_cpus();
  std::string mode = "processes";  // as nginx: a dead worker is forked again, and each worker
                                   // has a descriptor limit of its own
  std::string steer = "hash";
  EpollLoopOptions loop;
};

// Pins the calling thread (and so a worker process's only thread) to `cpu`.
int pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
}

// Makes the kernel pick, for each new connection, the listener whose index in the reuseport
// group is the CPU the connection arrived on (an index past the group falls back to the hash).
// Attached to one listener, it applies to the whole group.
bool steer_by_cpu(int listen_fd) {
  sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_CPU)},
      {BPF_RET | BPF_A, 0, 0, 0},
  };
  sock_fprog program{static_cast<unsigned short>(std::size(code)), code};
  return ::setsockopt(listen_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) ==
         0;
}

class ReusePortModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("reuseport.workers", bounded(1, kMaxWorkers)->default_value(defaults.workers),
         "workers, each with its own SO_REUSEPORT listener and epoll loop (1-1024; default: the "
         "CPUs echod may run on, from its affinity mask)")
        ("reuseport.mode", po::value<std::string>()->default_value(defaults.mode),
         "threads (workers are threads of echod) or processes (forked: each has its own "
         "descriptor limit; a dead one is forked again)")
        ("reuseport.steer", po::value<std::string>()->default_value(defaults.steer),
         "hash (the kernel hashes each connection to a listener) or cpu (the listener of the CPU "
         "the connection arrives on, SO_ATTACH_REUSEPORT_CBPF; worker i pinned to CPU i)");
    // clang-format on
    declare_epoll_loop_options(options, "reuseport");
  }

  explicit ReusePortModel(const po::variables_map& settings)
      : options_{settings["reuseport.workers"].as<int>(),
                 settings["reuseport.mode"].as<std::string>(),
                 settings["reuseport.steer"].as<std::string>(),
                 read_epoll_loop_options(settings, "reuseport")} {
    if (options_.mode != "threads" && options_.mode != "processes") {
      throw std::invalid_argument("reuseport.mode must be threads or processes, not '" +
                                  options_.mode + "'");
    }
    if (options_.steer != "hash" && options_.steer != "cpu") {
      throw std::invalid_argument("reuseport.steer must be hash or cpu, not '" + options_.steer +
                                  "'");
    }
    const long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
    if (options_.steer == "cpu" && options_.workers > cpus) {
      throw std::invalid_argument("reuseport.steer=cpu pins worker i to CPU i: reuseport.workers=" +
                                  std::to_string(options_.workers) + " is more than the " +
                                  std::to_string(cpus) + " CPUs");
    }
  }

  int run(const ServerContext& ctx) noexcept override {
    try {
      return serve(ctx);
    } catch (const std::system_error& e) {  // signal set-up for the worker processes failed
      ctx.log->error("reuseport: {}", e.what());
      return e.code().value();
    } catch (const std::exception& e) {  // allocation failed
      ctx.log->error("reuseport: {}", e.what());
      return ENOMEM;
    }
  }

 private:
  int serve(const ServerContext& ctx) {
    const auto workers = static_cast<std::size_t>(options_.workers);
    if (ctx.listen_fds.size() != workers) {  // an echod that does not know kCapReusePort
      ctx.log->error("reuseport: core opened {} listeners for {} workers", ctx.listen_fds.size(),
                     workers);
      return EINVAL;
    }
    if (steer_by_cpu_ && !steer_by_cpu(ctx.listen_fds.front())) {
      return log_call_failure(*ctx.log, "setsockopt(SO_ATTACH_REUSEPORT_CBPF)", errno);
    }
    ctx.log->info("{} worker {}, each with its own SO_REUSEPORT listener and epoll loop; steer: {}",
                  workers, options_.mode, steer_by_cpu_ ? "cpu (worker i on CPU i)" : "hash");
    return options_.mode == "threads" ? serve_threads(ctx) : serve_processes(ctx);
  }

  // Worker `index`'s view of the server: core's context with its own listener only.
  static ServerContext worker_context(const ServerContext& ctx, std::size_t index) {
    return ServerContext{ctx.listen_fds.subspan(index, 1),
                         ctx.log,
                         ctx.options,
                         ctx.stop_fd,
                         ctx.high_water,
                         ctx.drain_fd,
                         ctx.endpoint};
  }

  // One worker's whole life, on the calling thread (threads) or process (processes).
  int work(const ServerContext& ctx, std::size_t index) const {
    if (steer_by_cpu_) {
      if (const int error = pin_to_cpu(static_cast<int>(index)); error != 0) {
        return log_call_failure(*ctx.log, "pthread_setaffinity_np", error);
      }
    }
    return run_epoll_loop(worker_context(ctx, index), options_.loop);
  }

  // A worker that cannot serve shuts its listener down: the kernel takes it out of the group
  // and hashes new connections to the others (those already queued on it are reset).
  static void give_up_listener(const ServerContext& ctx, std::size_t index, int error) {
    ctx.log->error("worker {} stopped: {}; its listener is shut down, the others serve on", index,
                   std::strerror(error));
    ::shutdown(ctx.listen_fds[index], SHUT_RDWR);
  }

  // Threads: run() joins every worker, which return after the drain or at the stop.
  int serve_threads(const ServerContext& ctx) {
    const std::size_t workers = ctx.listen_fds.size();
    std::vector<int> results(workers, 0);
    std::vector<std::thread> threads;
    threads.reserve(workers);
    for (std::size_t index = 0; index < workers; ++index) {
      try {
        threads.emplace_back([&, index] {
          results[index] = work(ctx, index);
          if (results[index] != 0) give_up_listener(ctx, index, results[index]);
        });
      } catch (const std::system_error& e) {  // the workers started serve on
        results[index] = e.code().value();
        give_up_listener(ctx, index, results[index]);
      }
    }
    for (auto& thread : threads)
      thread.join();
    const auto failed = std::find_if(results.begin(), results.end(), [](int r) { return r != 0; });
    return failed == results.end() ? 0 : *failed;
  }

  // The parent's view of the worker processes. Owned by the parent.
  struct Pool {
    ChildProcesses children;
    std::vector<pid_t> pids;                 // the worker of each listener; 0: none now
    std::vector<Clock::time_point> fork_at;  // when to fork a missing worker
    Pool(std::size_t workers, std::shared_ptr<spdlog::logger> log)
        : children(std::move(log)), pids(workers, 0), fork_at(workers) {}
  };

  // Processes: the parent accepts nothing; it forks a worker per listener, forks again any
  // that dies (while serving), and at a drain waits for them all.
  int serve_processes(const ServerContext& ctx) {
    Pool pool(ctx.listen_fds.size(), ctx.log);
    for (;;) {
      const auto now = Clock::now();
      auto next_fork = Clock::time_point::max();
      for (std::size_t index = 0; index < pool.pids.size(); ++index) {
        if (pool.pids[index] != 0) continue;
        if (now >= pool.fork_at[index] && !fork_worker(pool, ctx, index)) {
          pool.fork_at[index] = now + kRespawnDelay;
        }
        if (pool.pids[index] == 0) next_fork = std::min(next_fork, pool.fork_at[index]);
      }
      int timeout = -1;
      if (next_fork != Clock::time_point::max()) {
        timeout = static_cast<int>(std::max<long long>(
            std::chrono::ceil<std::chrono::milliseconds>(next_fork - Clock::now()).count(), 0));
      }
      pollfd pfds[2] = {{ctx.drain_fd, POLLIN, 0}, {pool.children.exit_fd(), POLLIN, 0}};
      if (::poll(pfds, 2, timeout) < 0) {
        if (errno == EINTR) continue;
        return log_call_failure(*ctx.log, "poll", errno);
      }
      // A group SIGTERM reaches the workers too: those dying of it are not forked again.
      if (pfds[0].revents != 0) break;
      if (pfds[1].revents != 0) reap(pool, ctx);
    }
    // The drain: every worker stops accepting and exits once its connections are gone; at the
    // stop they finish theirs (each through its loop's Finisher) and those still running after
    // the grace are killed.
    while (pool.children.count() > 0) {
      pollfd pfds[2] = {{ctx.stop_fd, POLLIN, 0}, {pool.children.exit_fd(), POLLIN, 0}};
      if (::poll(pfds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        log_call_failure(*ctx.log, "poll", errno);
        break;
      }
      if (pfds[0].revents != 0) break;
      if (pfds[1].revents != 0) reap(pool, ctx);
    }
    const std::size_t killed =
        pool.children.stop_all(std::max(kChildStopGrace, ctx.endpoint->finish_grace()));
    if (killed > 0) ctx.log->warn("{} workers did not stop in time and were killed", killed);
    for (pid_t pid : pool.pids) {
      if (pid != 0) ctx.endpoint->release_owned_by(pid);
    }
    return 0;
  }

  // False if fork failed (the caller retries later).
  bool fork_worker(Pool& pool, const ServerContext& ctx, std::size_t index) const {
    const pid_t pid = pool.children.spawn([&] {
      // Only its own listener: the others' copies would only count against its descriptors.
      for (std::size_t other = 0; other < ctx.listen_fds.size(); ++other) {
        if (other != index) ::close(ctx.listen_fds[other]);
      }
      return work(ctx, index);
    });
    if (pid < 0) {
      ctx.log->warn("fork: {}; retrying in {} ms", std::strerror(errno), kRespawnDelay.count());
      return false;
    }
    pool.pids[index] = pid;
    ctx.log->debug("worker {}: pid {}", index, pid);
    return true;
  }

  static void reap(Pool& pool, const ServerContext& ctx) {
    for (const auto& exit : pool.children.reap()) {
      ctx.endpoint->release_owned_by(exit.pid);  // the places of its connections
      const auto found = std::find(pool.pids.begin(), pool.pids.end(), exit.pid);
      if (found == pool.pids.end()) continue;
      const auto index = static_cast<std::size_t>(found - pool.pids.begin());
      *found = 0;
      if (ctx.endpoint->draining()) continue;  // it drained, or the stop's signal reached it
      const bool young = exit.lifetime < kRespawnDelay;
      pool.fork_at[index] = young ? Clock::now() + kRespawnDelay : Clock::now();
      ctx.log->warn("worker {} (pid {}) {}; forking it again{}", index, exit.pid,
                    describe_exit(exit.status), young ? " in 1 s (it died young)" : "");
    }
  }

  Options options_;
  bool steer_by_cpu_ = options_.steer == "cpu";
};

}  // namespace

ECHOD_PLUGIN(ReusePortModel, "reuseport",
             "N workers sharing nothing, each with its own SO_REUSEPORT listener and epoll loop "
             "(threads or processes)",
             echod::kCapConcurrent | echod::kCapMultiThreaded | echod::kCapForks |
                 echod::kCapReusePort | echod::kCapEventDriven)
