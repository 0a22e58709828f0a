// The figures derived from a run — rates, CPU shares, warnings, whether the figures are suspect,
// status and exit status — computed once so the table and the JSON can never disagree.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/runner.hpp"
#include "engine/worker.hpp"

namespace echod::bench {

inline constexpr int kExitOk = 0;
inline constexpr int kExitErrors = 1;
inline constexpr int kExitOverloaded = 4;

struct Summary {
  Summary(const RunSetup& run_setup, const RunResult& run_result, std::string started)
      : setup(run_setup), run(run_result), started_at(std::move(started)) {}

  const RunSetup& setup;
  const RunResult& run;
  std::string started_at;  // wall-clock, ISO 8601 UTC

  bool open_loop = false;  // steady --rate, and hold: sends follow a schedule
  double measured_seconds = 0;
  double messages_per_second = 0;
  double megabytes_per_second = 0;  // echoed payload, 10^6 bytes
  double connections_per_second = 0;

  double client_cpu_percent = 0;             // of one core, all threads together
  double busiest_thread_percent = 0;         // the most loaded worker thread
  std::optional<double> server_cpu_percent;  // over the server sampler's own window

  std::vector<std::string> warnings;
  // Why the figures may not describe the server (client_saturated, rate_shortfall,
  // hold_shortfall): a suspect run can still be ok, but no published row should hide it.
  std::vector<std::string> suspect_reasons;
  std::string status;  // ok, overloaded, errors, interrupted, max_time, failed
  int exit_status = 0;
};

Summary summarize(const RunSetup& setup, const RunResult& run, std::string started_at);

// Exit status for a status word (0 ok, 4 overloaded, 1 anything else).
int exit_status_for(const std::string& status);

// "2026-01-31T12:00:00Z"
std::string utc_timestamp_now();

}  // namespace echod::bench
