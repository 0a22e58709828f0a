// steady --find-rate p99=1ms: runs the open-loop workload again and again, doubling --rate while
// the run stays clean (status ok, rate reached) and the percentile under the target, then
// bisects between the last rate that passed and the first that failed. Each trial is a whole run
// (connect, warm-up, --duration), so the figures of the reported rate are a real run's.
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "engine/runner.hpp"
#include "engine/worker.hpp"

namespace echod::bench {

struct RateTrial {
  double rate = 0;
  std::optional<double> percentile_us;  // the searched percentile; nullopt with no echoes
  std::string status;
  bool suspect = false;
  bool passed = false;
};

struct RateSearchOutcome {
  std::vector<RateTrial> trials;
  std::optional<double> best_rate;
  // The run reported: the best rate's, or the last trial's when none passed.
  std::unique_ptr<RunSetup> setup;
  std::unique_ptr<RunResult> run;
  std::string started_at;
};

// `log` gets one line per trial. Stops early on SIGINT/SIGTERM (the last trial says so).
RateSearchOutcome search_rate(const RunSetup& base, const RunMonitor& monitor, std::ostream& log);

}  // namespace echod::bench
