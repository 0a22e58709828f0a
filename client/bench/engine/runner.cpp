#include "engine/runner.hpp"

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "workloads/workloads.hpp"

namespace echod::bench {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signal) {
  g_stop_signal = signal;
}

constexpr auto kCheckEvery = std::chrono::milliseconds(100);
constexpr Nanos kProgressEvery = kNanosPerSecond;

std::string short_duration(Nanos nanos) {
  if (nanos < kNanosPerMilli) return fmt::format("{:.1f}us", static_cast<double>(nanos) / 1e3);
  if (nanos < kNanosPerSecond) return fmt::format("{:.2f}ms", static_cast<double>(nanos) / 1e6);
  return fmt::format("{:.2f}s", ns_to_seconds(nanos));
}

// Rewrites one line on stderr with where the run stands.
class ProgressLine {
 public:
  ProgressLine(const Options& options, bool enabled) : options_(options), enabled_(enabled) {}

  void set_last_second(const IntervalStats& second) {
    last_p99_ = second.latency.empty() ? std::optional<Nanos>() : second.latency.percentile(99);
  }

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
    if (last_p99_) line += fmt::format("  p99 {} (last second)", short_duration(*last_p99_));
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
  std::optional<Nanos> last_p99_;
  bool shown_ = false;
};

// Merges the threads' seconds and passes on each one every thread has moved past. Runner
// thread only.
class IntervalCollector {
 public:
  IntervalCollector(RunControl& control, std::function<void(const IntervalStats&)> deliver)
      : control_(control), deliver_(std::move(deliver)) {}

  void collect() {
    std::int64_t complete_before = IntervalMailbox::kAll;
    for (int i = 0; i < control_.threads(); ++i) {
      IntervalMailbox& mailbox = *control_.intervals(i);
      complete_before = std::min(complete_before, mailbox.complete_before());
      for (IntervalStats& stats : mailbox.take()) {
        auto [it, inserted] = pending_.try_emplace(stats.second);
        if (inserted) it->second.second = stats.second;
        it->second.merge(stats);
      }
    }
    while (!pending_.empty() && pending_.begin()->first < complete_before) {
      deliver_(pending_.begin()->second);
      pending_.erase(pending_.begin());
    }
  }

 private:
  RunControl& control_;
  std::function<void(const IntervalStats&)> deliver_;
  std::map<std::int64_t, IntervalStats> pending_;
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

bool run_interrupted() {
  return g_stop_signal != 0;
}

RunResult run_benchmark(const RunSetup& setup, const RunMonitor& monitor) {
  const Options& options = setup.options;
  RunControl control(options.threads);
  ProgressLine progress(options, monitor.show_progress);
  std::optional<IntervalCollector> intervals;
  if (monitor.show_progress || monitor.on_interval) {
    control.enable_intervals();
    intervals.emplace(control, [&](const IntervalStats& second) {
      progress.set_last_second(second);
      if (monitor.on_interval) monitor.on_interval(second);
    });
  }
  std::optional<ServerCpuSampler> sampler;
  if (options.server_pid > 0) {
    sampler.emplace([pid = options.server_pid] { return process_tree_cpu_time(pid); });
    control.set_server_sampler(&*sampler);
  }
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
        if (IntervalMailbox* mailbox = control.intervals(i)) mailbox->finish();
        std::lock_guard lock(mutex);
        result.failures.push_back(fmt::format("worker thread {}: {}", i, e.what()));
      }
      std::lock_guard lock(mutex);
      ++finished;
      finished_changed.notify_all();
    });
  }

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
      if (intervals) intervals->collect();
      progress.update(control, now);
      lock.lock();
    }
  }
  for (std::thread& thread : threads)
    thread.join();
  if (intervals) intervals->collect();
  progress.finish();
  if (sampler) {
    sampler->stop();
    result.server = sampler->result();
  }
  result.wall_seconds = ns_to_seconds(now_ns() - started);
  for (const auto& worker : workers)
    result.stats.merge(worker->stats());
  return result;
}

}  // namespace echod::bench
