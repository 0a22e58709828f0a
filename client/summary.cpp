#include "summary.hpp"

#include <ctime>

#include <fmt/format.h>

namespace echod::bench {
namespace {

constexpr double kBusyThreadFraction = 0.9;
constexpr double kShortfallFraction = 0.95;

void add_warnings(Summary& summary) {
  const Options& options = summary.setup.options;
  const Counters& counters = summary.run.stats.counters;
  auto& warnings = summary.warnings;
  for (const std::string& failure : summary.run.failures)
    warnings.push_back(failure);
  if (summary.run.end == RunEnd::kInterrupted) warnings.push_back("interrupted by a signal");
  if (summary.run.end == RunEnd::kMaxTime) {
    warnings.push_back(fmt::format("stopped by --max-time {} s", options.max_time_s));
  }
  if (summary.busiest_thread_percent >= kBusyThreadFraction * 100) {
    warnings.push_back(fmt::format(
        "an echo-bench thread was busy {:.0f}% of the measured time: the client may be the "
        "bottleneck (add --threads, or pin echo-bench to cores of its own)",
        summary.busiest_thread_percent));
  }
  if (options.workload == Workload::kSteady && options.rate > 0 && summary.measured_seconds > 0 &&
      summary.messages_per_second < kShortfallFraction * options.rate) {
    warnings.push_back(fmt::format(
        "achieved {:.0f} msg/s, short of --rate {:.0f}: sends fell behind the schedule (see the "
        "latency from the intended send time)",
        summary.messages_per_second, options.rate));
  }
  if (options.workload == Workload::kHold && summary.measured_seconds > 0) {
    const double expected = static_cast<double>(counters.connections_established) *
                            summary.measured_seconds / options.interval_s;
    if (static_cast<double>(counters.measured_messages) < kShortfallFraction * expected) {
      warnings.push_back(
          fmt::format("measured {} messages, expected about {:.0f} ({} connections, one per {} s)",
                      counters.measured_messages, expected, counters.connections_established,
                      options.interval_s));
    }
  }
  if (counters.messages_unanswered > 0) {
    warnings.push_back(
        fmt::format("{} messages sent were never echoed in full", counters.messages_unanswered));
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
  const bool clean = run.stats.errors.total() == 0 && run.stats.counters.messages_unanswered == 0 &&
                     run.stats.counters.messages_sent == run.stats.counters.messages_echoed;
  if (!run.failures.empty()) {
    summary.status = "failed";
  } else if (run.end == RunEnd::kInterrupted) {
    summary.status = "interrupted";
  } else if (run.end == RunEnd::kMaxTime) {
    summary.status = "max_time";
  } else if (!clean) {
    summary.status = "errors";
  } else {
    summary.status = "ok";
  }
  summary.exit_status = summary.status == "ok" ? 0 : 1;
}

}  // namespace

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
  const Counters& counters = run.stats.counters;
  const CpuWindow& window = run.stats.window;
  summary.measured_seconds = window.seconds();
  if (summary.measured_seconds > 0) {
    const double seconds = summary.measured_seconds;
    summary.messages_per_second = static_cast<double>(counters.measured_messages) / seconds;
    summary.megabytes_per_second = static_cast<double>(counters.measured_bytes) / seconds / 1e6;
    summary.connections_per_second = static_cast<double>(counters.measured_connections) / seconds;
    summary.client_cpu_percent = window.client.total_s() / seconds * 100;
    summary.busiest_thread_percent = window.busiest_thread_fraction * 100;
    if (window.server) summary.server_cpu_percent = window.server->total_s() / seconds * 100;
  }
  add_warnings(summary);
  decide_status(summary);
  return summary;
}

}  // namespace echod::bench
