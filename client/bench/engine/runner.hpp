// Runs one workload: a worker per thread, a sampler thread for the server's CPU, a progress line
// on a terminal and per-second statistics, the --max-time cap and SIGINT/SIGTERM (both end the
// run early but still report), then merges what the threads saw.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/clock.hpp"
#include "engine/intervals.hpp"
#include "engine/server_cpu_sampler.hpp"
#include "engine/worker.hpp"
#include "report/stats.hpp"

namespace echod::bench {

enum class RunEnd { kCompleted, kInterrupted, kMaxTime };

struct RunResult {
  WorkerStats stats;  // every thread's, merged
  RunEnd end = RunEnd::kCompleted;
  double wall_seconds = 0;
  std::vector<std::string> failures;  // worker threads that died (should not happen)
  std::optional<ServerCpu> server;    // --server-pid, over the sampler's own window
};

// What the runner shows and writes while the run goes on.
struct RunMonitor {
  bool show_progress = false;  // a live line on stderr (a terminal)
  // Called once per finished second, in order, with every thread's share merged.
  std::function<void(const IntervalStats&)> on_interval;
};

// Makes SIGINT and SIGTERM request a graceful stop, and SIGPIPE harmless. Call once, early.
void install_signal_handlers();

// True once SIGINT or SIGTERM came (after install_signal_handlers()).
bool run_interrupted();

RunResult run_benchmark(const RunSetup& setup, const RunMonitor& monitor);

}  // namespace echod::bench
