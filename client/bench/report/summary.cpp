#include "report/summary.hpp"

#include <algorithm>
#include <ctime>
#include <string_view>

#include <fmt/format.h>

namespace echod::bench {
namespace {

constexpr double kShortfallFraction = 0.95;

void add_warnings(Summary& summary) {
  const Options& options = summary.setup.options;
  const Counters& counters = summary.run.stats.counters;
  auto& warnings = summary.warnings;
  auto& suspect = summary.suspect_reasons;
  for (const std::string& failure : summary.run.failures)
    warnings.push_back(failure);
  if (summary.run.end == RunEnd::kInterrupted) warnings.push_back("interrupted by a signal");
  if (summary.run.end == RunEnd::kMaxTime) {
    warnings.push_back(fmt::format("stopped by --max-time {} s", options.max_time_s));
  }
  if (summary.measured_seconds > 0 && summary.busiest_thread_percent >= options.saturated_percent) {
    suspect.push_back("client_saturated");
    warnings.push_back(fmt::format(
        "an echo-bench thread was busy {:.0f}% of the measured time: the client may be the "
        "bottleneck (add --threads, or pin echo-bench to cores of its own)",
        summary.busiest_thread_percent));
  }
  if (options.workload == Workload::kSteady && options.rate > 0 && summary.measured_seconds > 0 &&
      summary.messages_per_second < kShortfallFraction * options.rate) {
    suspect.push_back("rate_shortfall");
    warnings.push_back(fmt::format(
        "achieved {:.0f} msg/s, short of --rate {:.0f}: sends fell behind the schedule (see the "
        "latency from the intended send time)",
        summary.messages_per_second, options.rate));
  }
  if (options.workload == Workload::kHold && summary.measured_seconds > 0) {
    const double expected = static_cast<double>(counters.connections_established) *
                            summary.measured_seconds / options.interval_s;
    if (static_cast<double>(counters.measured_messages) < kShortfallFraction * expected) {
      suspect.push_back("hold_shortfall");
      warnings.push_back(
          fmt::format("measured {} messages, expected about {:.0f} ({} connections, one per {} s)",
                      counters.measured_messages, expected, counters.connections_established,
                      options.interval_s));
    }
  }
  if (counters.messages_due_not_sent > 0) {
    warnings.push_back(fmt::format(
        "{} messages due by the schedule were never sent (the server fell behind): they are in "
        "the latency figures at the least latency they can have had",
        counters.messages_due_not_sent));
  }
  if (counters.messages_cut_short > 0) {
    warnings.push_back(fmt::format("{} messages were still on their way when the run ended",
                                   counters.messages_cut_short));
  }
  if (counters.messages_lost > 0) {
    warnings.push_back(
        fmt::format("{} messages were lost with connections that failed", counters.messages_lost));
  }
  if (options.server_pid > 0 && !summary.server_cpu_percent) {
    warnings.push_back(fmt::format(
        "--server-pid {}: server CPU not measured (/proc/{}/stat unreadable, or its process "
        "tree lost CPU time during the window)",
        options.server_pid, options.server_pid));
  }
}

void decide_status(Summary& summary) {
  const RunResult& run = summary.run;
  const Counters& counters = run.stats.counters;
  const bool failures = run.stats.errors.total() != 0 || counters.messages_lost != 0;
  // Nothing lost, but the server did not keep up: echoes were still coming when the run had to
  // end, or the schedule's sends piled up so far that the rate fell short. (A healthy run can
  // end with a send or two due while their connection waited for an echo at --depth; those are
  // counted, but alone do not make it overloaded.)
  const auto suspect = [&](std::string_view reason) {
    return std::find(summary.suspect_reasons.begin(), summary.suspect_reasons.end(), reason) !=
           summary.suspect_reasons.end();
  };
  const bool fell_short = suspect("rate_shortfall") || suspect("hold_shortfall");
  const bool behind =
      counters.messages_cut_short != 0 || (counters.messages_due_not_sent != 0 && fell_short);
  if (!run.failures.empty()) {
    summary.status = "failed";
  } else if (run.end == RunEnd::kInterrupted) {
    summary.status = "interrupted";
  } else if (run.end == RunEnd::kMaxTime) {
    summary.status = "max_time";
  } else if (failures) {
    summary.status = "errors";
  } else if (behind) {
    summary.status = "overloaded";
  } else {
    summary.status = "ok";
  }
  summary.exit_status = exit_status_for(summary.status);
}

}  // namespace

int exit_status_for(const std::string& status) {
  if (status == "ok") return kExitOk;
  if (status == "overloaded") return kExitOverloaded;
  return kExitErrors;
}

std::string utc_timestamp_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  ::gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

Summary summarize(const RunSetup& setup, const RunResult& run, std::string started_at) {
  Summary summary(setup, run, std::move(started_at));
  const Options& options = setup.options;
  const Counters& counters = run.stats.counters;
  const CpuWindow& window = run.stats.window;
  summary.open_loop = options.workload == Workload::kHold ||
                      (options.workload == Workload::kSteady && options.rate > 0);
  summary.measured_seconds = window.seconds();
  if (summary.measured_seconds > 0) {
    const double seconds = summary.measured_seconds;
    summary.messages_per_second = static_cast<double>(counters.measured_messages) / seconds;
    summary.megabytes_per_second = static_cast<double>(counters.measured_bytes) / seconds / 1e6;
    summary.connections_per_second = static_cast<double>(counters.measured_connections) / seconds;
    summary.client_cpu_percent = window.client.total_s() / seconds * 100;
    summary.busiest_thread_percent = window.busiest_thread_fraction * 100;
  }
  if (run.server && run.server->seconds > 0) {
    summary.server_cpu_percent = run.server->cpu.total_s() / run.server->seconds * 100;
  }
  add_warnings(summary);
  decide_status(summary);
  return summary;
}

}  // namespace echod::bench
