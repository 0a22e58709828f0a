#include <fmt/format.h>
#include <fmt/ostream.h>

#include "report.hpp"

namespace echod::bench {
namespace {

std::string grouped(std::uint64_t number) {
  std::string digits = std::to_string(number);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

// Three or four significant digits with a unit that fits.
std::string duration_text(double nanos) {
  if (nanos < 1e3) return fmt::format("{:.0f}ns", nanos);
  if (nanos < 1e6) return fmt::format("{:.1f}us", nanos / 1e3);
  if (nanos < 1e9) return fmt::format("{:.2f}ms", nanos / 1e6);
  return fmt::format("{:.3f}s", nanos / 1e9);
}

std::string describe_load(const Options& o) {
  switch (o.workload) {
    case Workload::kChurn:
      return fmt::format("{} workers x {} connections x {} exchanges of {} B", o.workers,
                         o.iterations, o.exchanges, o.size);
    case Workload::kSteady:
      return fmt::format(
          "{} connections, {} B messages, depth {} ({}), {}", o.connections, o.size, o.depth,
          o.depth == 1 ? "ping-pong" : "pipelined",
          o.rate > 0 ? fmt::format("open loop at {} msg/s", o.rate) : std::string("closed loop"));
    case Workload::kHold:
      return fmt::format("{} connections, one {} B message each every {} s", o.connections, o.size,
                         o.interval_s);
    case Workload::kBurst:
      return fmt::format("{} connections, {} parts of {} B", o.connections, o.parts, o.size);
  }
  return {};
}

void print_latencies(std::ostream& out, const Summary& summary) {
  std::string header = fmt::format("{:<24}{:>10}{:>10}", "latency", "count", "min");
  for (const PercentileColumn& column : kPercentiles)
    header += fmt::format("{:>10}", column.label);
  header += fmt::format("{:>10}{:>10}", "max", "mean");
  fmt::print(out, "{}\n", header);
  for (const HistogramSection& section : histogram_sections(summary)) {
    if (!section.applies) continue;
    const LatencyHistogram& h = section.histogram;
    std::string row = fmt::format("{:<24}{:>10}", section.label, grouped(h.count()));
    if (h.empty()) {
      fmt::print(out, "{}\n", row);
      continue;
    }
    row += fmt::format("{:>10}", duration_text(static_cast<double>(h.min())));
    for (const PercentileColumn& column : kPercentiles)
      row +=
          fmt::format("{:>10}", duration_text(static_cast<double>(h.percentile(column.percent))));
    row += fmt::format("{:>10}{:>10}", duration_text(static_cast<double>(h.max())),
                       duration_text(h.mean()));
    fmt::print(out, "{}\n", row);
  }
}

void print_errors(std::ostream& out, const ErrorCounts& errors) {
  if (errors.total() == 0) {
    fmt::print(out, "{:<14}none\n", "errors");
    return;
  }
  std::string kinds;
  for (std::size_t i = 0; i < kErrorKindCount; ++i) {
    if (errors.by_kind[i] == 0) continue;
    if (!kinds.empty()) kinds += ", ";
    kinds += fmt::format("{} {}", error_kind_name(static_cast<ErrorKind>(i)),
                         grouped(errors.by_kind[i]));
  }
  fmt::print(out, "{:<14}{} total: {}\n", "errors", grouped(errors.total()), kinds);
  if (!errors.by_errno.empty()) {
    std::string codes;
    for (const auto& [name, count] : errors.by_errno)
      codes += fmt::format("{}{} {}", codes.empty() ? "" : ", ", name, grouped(count));
    fmt::print(out, "{:<14}{}\n", "  by errno", codes);
  }
  if (const auto& m = errors.first_mismatch) {
    fmt::print(out, "{:<14}connection {} stream byte {}: sent {}, got {}\n", "  first bad",
               m->connection, m->stream_offset,
               m->expected < 0 ? std::string("nothing") : fmt::format("0x{:02x}", m->expected),
               fmt::format("0x{:02x}", m->received));
  }
}

}  // namespace

void print_table(std::ostream& out, const Summary& summary) {
  const Options& o = summary.setup.options;
  const WorkerStats& stats = summary.run.stats;
  const Counters& c = stats.counters;
  fmt::print(out, "echo-bench {}: {} against {}, {} thread{}\n", ECHO_BENCH_VERSION,
             workload_name(o.workload), summary.setup.target.to_string(), o.threads,
             o.threads == 1 ? "" : "s");
  fmt::print(out, "  {}\n", describe_load(o));
  fmt::print(out, "  warm-up {} s excluded; measured {:.2f} s (whole run {:.2f} s)\n\n", o.warmup_s,
             summary.measured_seconds, summary.run.wall_seconds);

  print_latencies(out, summary);
  fmt::print(out, "\n");

  if (o.workload == Workload::kChurn) {
    fmt::print(out, "{:<14}{:.1f} connections/s ({} measured), {:.0f} msg/s\n", "throughput",
               summary.connections_per_second, grouped(c.measured_connections),
               summary.messages_per_second);
  } else {
    fmt::print(out, "{:<14}{:.0f} msg/s, {:.2f} MB/s ({} messages measured)\n", "throughput",
               summary.messages_per_second, summary.megabytes_per_second,
               grouped(c.measured_messages));
  }
  fmt::print(out, "{:<14}sent {} = echoed {} + unanswered {}\n", "messages",
             grouped(c.messages_sent), grouped(c.messages_echoed), grouped(c.messages_unanswered));
  fmt::print(out, "{:<14}sent {}, echoed and verified {}\n", "bytes", grouped(c.bytes_sent),
             grouped(c.bytes_echoed));
  fmt::print(out, "{:<14}attempted {}, established {}, {} {}\n", "connections",
             grouped(c.connections_attempted), grouped(c.connections_established),
             o.workload == Workload::kChurn ? "completed" : "open at end",
             grouped(o.workload == Workload::kChurn ? c.connections_completed
                                                    : c.connections_open_at_end));
  if (o.workload == Workload::kBurst) {
    std::string parts;
    for (std::size_t i = 0; i < stats.parts.size(); ++i) {
      const PartTiming& part = stats.parts[i];
      parts += fmt::format("{}{}: {}", i ? ", " : "", i + 1,
                           part.end > part.start
                               ? duration_text(static_cast<double>(part.end - part.start))
                               : std::string("incomplete"));
    }
    fmt::print(out, "{:<14}{}\n", "parts", parts);
  }
  print_errors(out, stats.errors);

  std::string cpu = fmt::format("echo-bench {:.1f}% of one core (busiest thread {:.1f}%)",
                                summary.client_cpu_percent, summary.busiest_thread_percent);
  if (summary.server_cpu_percent) {
    cpu += fmt::format("; server pid {} {:.1f}% of one core", o.server_pid,
                       *summary.server_cpu_percent);
  }
  fmt::print(out, "{:<14}{}\n", "cpu", cpu);
  fmt::print(out, "{:<14}{}\n", "status", summary.status);
  for (const std::string& warning : summary.warnings)
    fmt::print(out, "warning: {}\n", warning);
}

}  // namespace echod::bench
