#include "report.hpp"

namespace echod::bench {

std::vector<HistogramSection> histogram_sections(const Summary& summary) {
  const Options& options = summary.setup.options;
  const WorkerStats& stats = summary.run.stats;
  const bool churn = options.workload == Workload::kChurn;
  // Open loop: a message can wait for its turn, so the two latencies differ and both matter.
  const bool open_loop = options.workload == Workload::kHold ||
                         (options.workload == Workload::kSteady && options.rate > 0);
  return {
      {churn ? "exchange" : "round trip", "latency_us", stats.latency, true},
      {"round trip, uncorrected", "latency_uncorrected_us", stats.latency_uncorrected, open_loop},
      {"connect", "connect_us", stats.connect, true},
      {"whole connection", "connection_total_us", stats.connection_total, churn},
  };
}

}  // namespace echod::bench
