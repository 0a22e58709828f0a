#include <fmt/format.h>
#include <fmt/ostream.h>

#include "report/report.hpp"

namespace echod::bench {
namespace {

using nlohmann::json;

std::string grouped(std::uint64_t number) {
  std::string digits = std::to_string(number);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

std::uint64_t count(const json& report, const char* object, const char* key) {
  return report.at(object).at(key).get<std::uint64_t>();
}

// Three or four significant digits with a unit that fits.
std::string duration_text(double nanos) {
  if (nanos < 1e3) return fmt::format("{:.0f}ns", nanos);
  if (nanos < 1e6) return fmt::format("{:.1f}us", nanos / 1e3);
  if (nanos < 1e9) return fmt::format("{:.2f}ms", nanos / 1e6);
  return fmt::format("{:.3f}s", nanos / 1e9);
}

std::string describe_load(const json& report) {
  const json& p = report.at("parameters");
  const std::string workload = report.at("workload");
  if (workload == "churn") {
    return fmt::format("{} workers x {} connections x {} exchanges of {} B", p.at("workers").dump(),
                       p.at("iterations").dump(), p.at("exchanges").dump(), p.at("size").dump());
  }
  if (workload == "steady") {
    const double rate = p.at("rate").get<double>();
    const int depth = p.at("depth").get<int>();
    return fmt::format(
        "{} connections, {} B messages, depth {} ({}), {}", p.at("connections").dump(),
        p.at("size").dump(), depth, depth == 1 ? "ping-pong" : "pipelined",
        rate > 0 ? fmt::format("open loop at {:g} msg/s", rate) : std::string("closed loop"));
  }
  if (workload == "hold") {
    return fmt::format("{} connections, one {} B message each every {:g} s",
                       p.at("connections").dump(), p.at("size").dump(),
                       p.at("interval_s").get<double>());
  }
  return fmt::format("{} connections, {} parts of {} B", p.at("connections").dump(),
                     p.at("parts").dump(), p.at("size").dump());
}

// Which latency rows a workload has: the uncorrected one only in open loop (where a message can
// wait for its turn, so the two differ), the whole-connection one only in churn.
bool row_applies(const json& report, std::string_view key) {
  const std::string workload = report.at("workload");
  const json& rate = report.at("parameters").at("rate");
  const bool open_loop = workload == "hold" || (workload == "steady" && rate.get<double>() > 0);
  if (key == "latency_uncorrected_us") return open_loop;
  if (key == "connection_total_us") return workload == "churn";
  return true;
}

void print_latencies(std::ostream& out, const json& report) {
  std::vector<double> percentiles =
      report.at("parameters").value("percentiles", std::vector<double>{50, 90, 99, 99.9});
  std::string header = fmt::format("{:<24}{:>10}{:>10}", "latency", "count", "min");
  for (double percent : percentiles)
    header += fmt::format("{:>10}", percentile_label(percent));
  header += fmt::format("{:>10}{:>10}", "max", "mean");
  fmt::print(out, "{}\n", header);
  for (const HistogramSection& section : kHistogramSections) {
    if (!row_applies(report, section.json_key)) continue;
    const json& h = report.at(std::string(section.json_key));
    std::string_view label = section.label;
    if (section.json_key == "latency_us" && report.at("workload") == "churn") label = "exchange";
    std::string row = fmt::format("{:<24}{:>10}", label, grouped(h.at("count")));
    if (h.at("count") == 0) {
      fmt::print(out, "{}\n", row);
      continue;
    }
    const auto cell = [&](const std::string& key) {
      return fmt::format("{:>10}", duration_text(h.at(key).get<double>() * 1e3));
    };
    row += cell("min");
    for (double percent : percentiles)
      row += cell(percentile_key(percent));
    row += cell("max") + cell("mean");
    fmt::print(out, "{}\n", row);
  }
}

void print_errors(std::ostream& out, const json& errors) {
  if (errors.at("total") == 0) {
    fmt::print(out, "{:<14}none\n", "errors");
    return;
  }
  std::string kinds;
  for (std::size_t i = 0; i < kErrorKindCount; ++i) {
    const std::string name(error_kind_name(static_cast<ErrorKind>(i)));
    const auto n = errors.at(name).get<std::uint64_t>();
    if (n == 0) continue;
    if (!kinds.empty()) kinds += ", ";
    kinds += fmt::format("{} {}", name, grouped(n));
  }
  fmt::print(out, "{:<14}{} total: {}\n", "errors", grouped(errors.at("total")), kinds);
  if (!errors.at("by_errno").empty()) {
    std::string codes;
    for (const auto& [name, n] : errors.at("by_errno").items())
      codes += fmt::format("{}{} {}", codes.empty() ? "" : ", ", name, grouped(n));
    fmt::print(out, "{:<14}{}\n", "  by errno", codes);
  }
  if (const json& m = errors.at("first_mismatch"); !m.is_null()) {
    fmt::print(out, "{:<14}connection {} stream byte {}: sent {}, got {}\n", "  first bad",
               m.at("connection").dump(), m.at("stream_offset").dump(),
               m.at("expected").is_null() ? std::string("nothing")
                                          : fmt::format("0x{:02x}", m.at("expected").get<int>()),
               fmt::format("0x{:02x}", m.at("received").get<int>()));
  }
}

// "ok", "ok, suspect: client_saturated", "overloaded, suspect: rate_shortfall".
std::string status_text(const json& report) {
  std::string text = report.at("status");
  if (report.at("suspect").get<bool>()) {
    std::string reasons;
    for (const json& reason : report.at("suspect_reasons"))
      reasons += (reasons.empty() ? "" : ", ") + reason.get<std::string>();
    text += ", suspect: " + reasons;
  }
  return text;
}

}  // namespace

void print_table(std::ostream& out, const json& report) {
  const json& p = report.at("parameters");
  const std::string workload = report.at("workload");
  const int threads = p.at("threads");
  fmt::print(out, "echo-bench {}: {} against {}, {} thread{}\n",
             report.at("version").get<std::string>(), workload, p.at("target").get<std::string>(),
             threads, threads == 1 ? "" : "s");
  if (report.contains("merged_from")) {
    fmt::print(out, "  merged from {} reports\n", report.at("merged_from").size());
  }
  fmt::print(out, "  {}\n", describe_load(report));
  const json& warmup = p.at("warmup_s");
  fmt::print(out, "  warm-up {} s excluded; measured {:.2f} s (whole run {:.2f} s)\n\n",
             warmup.is_null() ? std::string("0") : fmt::format("{:g}", warmup.get<double>()),
             report.at("measured_seconds").get<double>(), report.at("wall_seconds").get<double>());

  print_latencies(out, report);
  fmt::print(out, "\n");

  if (workload == "churn") {
    fmt::print(out, "{:<14}{:.1f} connections/s ({} measured), {:.0f} msg/s\n", "throughput",
               report.at("connections").at("per_second").get<double>(),
               grouped(count(report, "connections", "measured")),
               report.at("messages").at("per_second").get<double>());
  } else {
    fmt::print(out, "{:<14}{:.0f} msg/s, {:.2f} MB/s ({} messages measured)\n", "throughput",
               report.at("messages").at("per_second").get<double>(),
               report.at("bytes").at("mb_per_second").get<double>(),
               grouped(count(report, "messages", "measured")));
  }
  fmt::print(
      out, "{:<14}sent {} = echoed {} + lost {} + cut short {}", "messages",
      grouped(count(report, "messages", "sent")), grouped(count(report, "messages", "echoed")),
      grouped(count(report, "messages", "lost")), grouped(count(report, "messages", "cut_short")));
  if (const auto due = count(report, "messages", "due_not_sent"); due != 0) {
    fmt::print(out, "; due but not sent {}", grouped(due));
  }
  fmt::print(out, "\n");
  fmt::print(out, "{:<14}sent {}, echoed and verified {}\n", "bytes",
             grouped(count(report, "bytes", "sent")), grouped(count(report, "bytes", "echoed")));
  fmt::print(
      out, "{:<14}attempted {}, established {}, {} {}\n", "connections",
      grouped(count(report, "connections", "attempted")),
      grouped(count(report, "connections", "established")),
      workload == "churn" ? "completed" : "open at end",
      grouped(count(report, "connections", workload == "churn" ? "completed" : "open_at_end")));
  if (workload == "burst") {
    std::string parts;
    std::size_t i = 0;
    for (const json& part : report.at("parts")) {
      parts += fmt::format(
          "{}{}: {}", i ? ", " : "", i + 1,
          part.is_null() ? std::string("incomplete") : duration_text(part.get<double>() * 1e9));
      ++i;
    }
    fmt::print(out, "{:<14}{}\n", "parts", parts);
  }
  print_errors(out, report.at("errors"));

  const json& cpu = report.at("cpu");
  std::string line = fmt::format("echo-bench {:.1f}% of one core (busiest thread {:.1f}%)",
                                 cpu.at("client").at("percent_of_one_core").get<double>(),
                                 cpu.at("client").at("busiest_thread_percent").get<double>());
  if (const json& server = cpu.at("server"); !server.is_null()) {
    line += fmt::format("; server pid {} {:.1f}% of one core", server.at("pid").get<int>(),
                        server.at("percent_of_one_core").get<double>());
  }
  fmt::print(out, "{:<14}{}\n", "cpu", line);
  fmt::print(out, "{:<14}{}\n", "status", status_text(report));
  for (const json& warning : report.at("warnings"))
    fmt::print(out, "warning: {}\n", warning.get<std::string>());
}

}  // namespace echod::bench
