// thread: one thread per connection, each running the blocking echo loop; the main thread only
// accepts and joins. Simple code and real parallelism, paid for with one stack and one
// scheduler entity per client: loses to the event loops once clients number in the thousands.
// At thread.max-threads busy threads it stops accepting; new clients wait in the listen backlog.
#include <pthread.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/backlog_burst.hpp"
#include "echod/blocking_echo.hpp"
#include "echod/errno_policy.hpp"
#include "echod/options.hpp"
#include "echod/process.hpp"
#include "echod/server_model.hpp"
#include "echod/stop.hpp"

namespace {

using namespace echod;
namespace po = boost::program_options;

struct Options {
  int max_threads = 1024;
  std::size_t stack_size_kib = 0;  // 0: the process default (RLIMIT_STACK, usually 8 MiB)
  int connection_nice = 10;        // how much nicer connection threads are than the acceptor
};

class ThreadModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    // clang-format off
    options.add_options()
        ("thread.max-threads", bounded(1, 65536)->default_value(defaults.max_threads),
         "clients served at once, one thread each (1-65536); more wait in the listen backlog")
        ("thread.stack-size", bounded<std::size_t>(0, 1024 * 1024)->default_value(defaults.stack_size_kib),
         "stack of each connection thread in KiB (0: the process default, `ulimit -s`; else "
         "256-1048576)")
        ("thread.connection-nice", bounded(0, 19)->default_value(defaults.connection_nice),
         "niceness added to each connection thread (0-19), so that the accepting thread runs "
         "first when many clients keep the core busy; 0 = all equal");
    // clang-format on
  }

  explicit ThreadModel(const po::variables_map& settings)
      : options_{settings["thread.max-threads"].as<int>(),
                 settings["thread.stack-size"].as<std::size_t>(),
                 settings["thread.connection-nice"].as<int>()} {
    if (options_.stack_size_kib != 0 &&
        (options_.stack_size_kib < 256 || options_.stack_size_kib > 1024 * 1024)) {
      throw std::invalid_argument("thread.stack-size must be 0 or between 256 and 1048576 KiB");
    }
  }

  int run(const ServerContext& ctx) noexcept override {
    try {  // every allocation happens here, before the first thread starts
      slots_ = std::vector<Slot>(static_cast<std::size_t>(options_.max_threads));
      for (int i = options_.max_threads - 1; i >= 0; --i)
        free_slots_.push_back(i);
      finished_.reserve(slots_.size());
      reaped_.reserve(slots_.size());
    } catch (const std::exception& e) {
      ctx.log->error("thread: {}", e.what());
      return ENOMEM;
    }
    done_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!done_) return log_call_failure(*ctx.log, "eventfd", errno);
    pthread_attr_t attr;
    ::pthread_attr_init(&attr);
    if (options_.stack_size_kib != 0) {
      ::pthread_attr_setstacksize(&attr, options_.stack_size_kib * 1024);
    }

    Acceptor acceptor(ctx.listen_fds.front(), ctx);
    for (;;) {
      // At the cap the listener is watched only until a client is seen waiting (logged once),
      // then left out (poll ignores fd -1): clients queue in the backlog until a thread ends.
      const bool watch = !free_slots_.empty() || !burst_.active();
      // drain_fd: stop accepting (the listener is shut); the threads serve on.
      pollfd pfds[3] = {{ctx.drain_fd, POLLIN, 0},
                        {done_.get(), POLLIN, 0},
                        {watch ? acceptor.listen_fd() : -1, POLLIN, 0}};
      if (::poll(pfds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        log_call_failure(*ctx.log, "poll", errno);
        if (!sleep_unless_stopped(ctx.drain_fd, kAcceptBackoffMs)) break;
        continue;
      }
      if (pfds[0].revents != 0) break;
      if (pfds[1].revents != 0) reap();
      const bool full = free_slots_.empty();
      // During a burst a freed slot tries the backlog at once, to learn whether it is empty.
      if (pfds[2].revents == 0 && (full || !burst_.active())) continue;
      if (full) {
        burst_.at_cap(slots_.size(), *ctx.log);
      } else if (!accept_ready(acceptor, attr, ctx) &&
                 !sleep_unless_stopped(ctx.drain_fd, kAcceptBackoffMs)) {
        break;
      }
    }

    // Each thread ends when its client leaves (a drain) or sees stop_fd in serve_blocking,
    // finishes its connection and reports back.
    while (free_slots_.size() < slots_.size()) {
      if (wait_ready(done_.get(), POLLIN, /*stop_fd=*/-1) == Wait::kReady) reap();
    }
    ::pthread_attr_destroy(&attr);
    return 0;
  }

 private:
  // One connection thread. `connection` is handed over before the thread starts.
  struct Slot {
    ThreadModel* model = nullptr;
    const ServerContext* ctx = nullptr;
    Accepted connection;
    pthread_t thread{};
  };

  // Takes the pending connections while below the cap, then starts a thread for each, so a new
  // thread never runs between two accepts. What keeps this thread ahead of a thousand busy ones
  // is their lower priority (thread.connection-nice, set in serve()); see docs/models.md,
  // "Accepting under load". False when out of descriptors or threads: back off.
  bool accept_ready(Acceptor& acceptor, const pthread_attr_t& attr, const ServerContext& ctx) {
    bool keep_accepting = true;
    std::size_t taken = 0;
    while (taken < free_slots_.size()) {
      auto [status, connection] = burst_.accept(acceptor, *ctx.log);
      if (status != Acceptor::Status::kAccepted) {
        keep_accepting = status == Acceptor::Status::kWouldBlock;
        break;
      }
      const int index = free_slots_[free_slots_.size() - 1 - taken];
      slots_[static_cast<std::size_t>(index)] = Slot{this, &ctx, std::move(connection), {}};
      ++taken;
    }
    for (; taken > 0; --taken) {
      const int index = free_slots_.back();
      Slot& slot = slots_[static_cast<std::size_t>(index)];
      ctx.log->debug("fd {}: accepted, thread slot {}", slot.connection.fd(), index);
      if (int error = ::pthread_create(&slot.thread, &attr, &ThreadModel::serve, &slot)) {
        ctx.log->warn("pthread_create: {}; closing {} new connections", std::strerror(error),
                      taken);
        for (std::size_t i = 0; i < taken; ++i)
          slots_[static_cast<std::size_t>(free_slots_[free_slots_.size() - 1 - i])].connection = {};
        return false;
      }
      free_slots_.pop_back();
    }
    return keep_accepting;
  }

  // Thread body: echo until the peer leaves or a stop, then tell the main thread to join us.
  static void* serve(void* arg) {
    Slot& slot = *static_cast<Slot*>(arg);
    ThreadModel& self = *slot.model;
    lower_own_priority(self.options_.connection_nice);
    serve_blocking(std::move(slot.connection), *slot.ctx);
    {
      std::lock_guard lock(self.mutex_);
      self.finished_.push_back(static_cast<int>(&slot - self.slots_.data()));  // reserved
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(self.done_.get(), &one, sizeof one);
    return nullptr;
  }

  // Joins every thread that reported back and frees its slot. Main thread only.
  void reap() {
    std::uint64_t count;
    [[maybe_unused]] ssize_t n = ::read(done_.get(), &count, sizeof count);
    {
      std::lock_guard lock(mutex_);
      reaped_.swap(finished_);  // both keep their reserved capacity
    }
    for (int index : reaped_) {
      ::pthread_join(slots_[static_cast<std::size_t>(index)].thread, nullptr);
      free_slots_.push_back(index);
    }
    reaped_.clear();
  }

  Options options_;
  std::vector<Slot> slots_;      // one per possible thread; a slot is owned by its thread
  std::vector<int> free_slots_;  // main thread only
  BacklogBurst burst_{"threads", "thread.max-threads"};  // main thread only
  Fd done_;                                              // eventfd: a thread finished
  std::mutex mutex_;                                     // guards finished_
  std::vector<int> finished_;  // slots whose thread has returned, not yet joined
  std::vector<int> reaped_;    // main thread's copy of finished_
};

}  // namespace

ECHOD_PLUGIN(ThreadModel, "thread",
             "blocking, one thread per connection (capped by thread.max-threads)",
             echod::kCapConcurrent | echod::kCapMultiThreaded)
