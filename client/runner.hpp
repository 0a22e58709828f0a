// Runs one workload: a worker per thread, a progress line on a terminal, the --max-time cap and
// SIGINT/SIGTERM (both end the run early but still report), then merges what the threads saw.
#pragma once

#include <string>
#include <vector>

#include "clock.hpp"
#include "stats.hpp"
#include "worker.hpp"

namespace echod::bench {

enum class RunEnd { kCompleted, kInterrupted, kMaxTime };

struct RunResult {
  WorkerStats stats;  // every thread's, merged
  RunEnd end = RunEnd::kCompleted;
  double wall_seconds = 0;
  std::vector<std::string> failures;  // worker threads that died (should not happen)
};

// Makes SIGINT and SIGTERM request a graceful stop, and SIGPIPE harmless. Call once, early.
void install_signal_handlers();

RunResult run_benchmark(const RunSetup& setup, bool show_progress);

}  // namespace echod::bench
