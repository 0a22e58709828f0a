// The figures derived from a run — rates, CPU shares, warnings, status and exit status —
// computed once so the table and the JSON can never disagree.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runner.hpp"
#include "worker.hpp"

namespace echod::bench {

struct Summary {
  Summary(const RunSetup& run_setup, const RunResult& run_result, std::string started)
      : setup(run_setup), run(run_result), started_at(std::move(started)) {}

  const RunSetup& setup;
  const RunResult& run;
  std::string started_at;  // wall-clock, ISO 8601 UTC

  double measured_seconds = 0;
  double messages_per_second = 0;
  double megabytes_per_second = 0;  // echoed payload, 10^6 bytes
  double connections_per_second = 0;

  double client_cpu_percent = 0;      // of one core, all threads together
  double busiest_thread_percent = 0;  // the most loaded worker thread
  std::optional<double> server_cpu_percent;

  std::vector<std::string> warnings;
  std::string status;  // ok, errors, interrupted, max_time, failed
  int exit_status = 0;
};

Summary summarize(const RunSetup& setup, const RunResult& run, std::string started_at);

// "2026-01-31T12:00:00Z"
std::string utc_timestamp_now();

}  // namespace echod::bench
