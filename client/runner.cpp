#include "runner.hpp"

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "workloads.hpp"

namespace echod::bench {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signal) {
  g_stop_signal = signal;
}

constexpr auto kCheckEvery = std::chrono::milliseconds(100);
constexpr Nanos kProgressEvery = kNanosPerSecond;

// Rewrites one line on stderr with where the run stands.
class ProgressLine {
 public:
  ProgressLine(const Options& options, bool enabled) : options_(options), enabled_(enabled) {}

  void update(const RunControl& control, Nanos now) {
    if (!enabled_ || now < next_) return;
    next_ = now + kProgressEvery;
    const ProgressTotals totals = control.progress_totals();
    const double rate = last_time_ ? static_cast<double>(totals.messages_echoed - last_echoed_) /
                                         ns_to_seconds(now - last_time_)
                                   : 0.0;
    last_time_ = now;
    last_echoed_ = totals.messages_echoed;
    std::string phase = "connecting";
    if (const Nanos start = control.run_start(); start != 0) {
      const double elapsed = ns_to_seconds(now - start);
      const double planned = options_.warmup_s + options_.duration_s;
      phase = elapsed < options_.warmup_s ? fmt::format("warm-up {:.1f}s", elapsed)
              : planned > 0               ? fmt::format("{:.1f}/{:.1f}s", elapsed, planned)
                                          : fmt::format("{:.1f}s", elapsed);
    }
    std::string line =
        fmt::format("[{}] {}  open {}  echoed {} ({:.0f}/s)", workload_name(options_.workload),
                    phase, totals.open_connections, totals.messages_echoed, rate);
    if (options_.workload == Workload::kChurn) {
      line += fmt::format("  connections done {}", totals.connections_completed);
    }
    line += fmt::format("  errors {}", totals.errors);
    fmt::print(stderr, "\r\033[K{}", line);
    std::fflush(stderr);
    shown_ = true;
  }

  void finish() {
    if (shown_) fmt::print(stderr, "\r\033[K");
  }

 private:
  const Options& options_;
  const bool enabled_;
  Nanos next_ = 0;
  Nanos last_time_ = 0;
  std::uint64_t last_echoed_ = 0;
  bool shown_ = false;
};

}  // namespace

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // send() uses MSG_NOSIGNAL; this covers anything else
}

RunResult run_benchmark(const RunSetup& setup, bool show_progress) {
  const Options& options = setup.options;
  RunControl control(options.threads);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < options.threads; ++i)
    workers.push_back(make_worker(setup, control, i));

  RunResult result;
  std::mutex mutex;
  std::condition_variable finished_changed;
  int finished = 0;
  const Nanos started = now_ns();
  std::vector<std::thread> threads;
  for (int i = 0; i < options.threads; ++i) {
    threads.emplace_back([&, i] {
      try {
        workers[static_cast<std::size_t>(i)]->run();
      } catch (const std::exception& e) {
        control.request_stop();
        control.leave();
        std::lock_guard lock(mutex);
        result.failures.push_back(fmt::format("worker thread {}: {}", i, e.what()));
      }
      std::lock_guard lock(mutex);
      ++finished;
      finished_changed.notify_all();
    });
  }

  ProgressLine progress(options, show_progress);
  const Nanos hard_stop = started + seconds_to_ns(options.max_time_s);
  {
    std::unique_lock lock(mutex);
    while (!finished_changed.wait_for(lock, kCheckEvery,
                                      [&] { return finished == options.threads; })) {
      const Nanos now = now_ns();
      if (g_stop_signal != 0 && result.end == RunEnd::kCompleted) {
        result.end = RunEnd::kInterrupted;
        control.request_stop();
      }
      if (now >= hard_stop && result.end == RunEnd::kCompleted) {
        result.end = RunEnd::kMaxTime;
        control.request_stop();
      }
      lock.unlock();
      progress.update(control, now);
      lock.lock();
    }
  }
  for (std::thread& thread : threads)
    thread.join();
  progress.finish();
  result.wall_seconds = ns_to_seconds(now_ns() - started);
  for (const auto& worker : workers)
    result.stats.merge(worker->stats());
  return result;
}

}  // namespace echod::bench
