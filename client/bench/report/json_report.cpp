#include <cmath>

#include "report/report.hpp"

namespace echod::bench {
namespace {

using nlohmann::json;

double micros(double nanos) {
  return nanos / 1e3;
}

// Parameters that do not apply to the workload are null, so every report has the same keys.
template <typename T>
json applicable(bool applies, const T& value) {
  return applies ? json(value) : json(nullptr);
}

json parameters_json(const Summary& summary) {
  const Options& o = summary.setup.options;
  const bool churn = o.workload == Workload::kChurn;
  const bool steady = o.workload == Workload::kSteady;
  json targets = json::array();
  for (const SocketAddress& address : summary.setup.resolved)
    targets.push_back(address.to_string());
  return {
      {"host", o.host},
      {"port", static_cast<int>(o.port)},
      {"target", summary.setup.target.to_string()},
      {"resolved", targets},
      {"threads", o.threads},
      {"source_ips", o.source_ips},
      {"source_ip_count", summary.setup.sources.size()},
      {"size", o.size},
      {"connections", applicable(!churn, o.connections)},
      {"connect_concurrency", applicable(!churn, o.connect_concurrency)},
      {"connect_rate", applicable(!churn, o.connect_rate)},
      {"depth", applicable(steady, o.depth)},
      {"rate", applicable(steady, o.rate)},
      {"interval_s", applicable(o.workload == Workload::kHold, o.interval_s)},
      {"workers", applicable(churn, o.workers)},
      {"iterations", applicable(churn, o.iterations)},
      {"exchanges", applicable(churn, o.exchanges)},
      {"parts", applicable(o.workload == Workload::kBurst, o.parts)},
      {"duration_s", applicable(o.workload != Workload::kBurst, o.duration_s)},
      {"warmup_s", applicable(o.workload != Workload::kBurst, o.warmup_s)},
      {"connect_timeout_s", o.connect_timeout_s},
      {"timeout_s", o.timeout_s},
      {"max_time_s", o.max_time_s},
      {"percentiles", o.percentiles},
      {"server_pid", applicable(o.server_pid > 0, o.server_pid)},
  };
}

json errors_json(const ErrorCounts& errors) {
  json result{{"total", errors.total()}};
  for (std::size_t i = 0; i < kErrorKindCount; ++i)
    result[std::string(error_kind_name(static_cast<ErrorKind>(i)))] = errors.by_kind[i];
  result["by_errno"] = json::object();
  for (const auto& [name, count] : errors.by_errno)
    result["by_errno"][name] = count;
  result["first_mismatch"] = nullptr;
  if (const auto& m = errors.first_mismatch) {
    result["first_mismatch"] = {{"connection", m->connection},
                                {"stream_offset", m->stream_offset},
                                {"expected", m->expected < 0 ? json(nullptr) : json(m->expected)},
                                {"received", m->received}};
  }
  return result;
}

json cpu_json(const Summary& summary) {
  const CpuWindow& window = summary.run.stats.window;
  json server = nullptr;
  if (summary.run.server && summary.server_cpu_percent) {
    server = {{"pid", summary.setup.options.server_pid},
              {"seconds", summary.run.server->seconds},
              {"user_s", summary.run.server->cpu.user_s},
              {"system_s", summary.run.server->cpu.system_s},
              {"percent_of_one_core", *summary.server_cpu_percent}};
  }
  return {{"seconds", summary.measured_seconds},
          {"client",
           {{"user_s", window.client.user_s},
            {"system_s", window.client.system_s},
            {"percent_of_one_core", summary.client_cpu_percent},
            {"busiest_thread_percent", summary.busiest_thread_percent}}},
          {"server", server}};
}

}  // namespace

json histogram_json(const LatencyHistogram& h, const std::vector<double>& percentiles) {
  json result{{"count", h.count()}};
  const auto value = [&](double nanos) { return h.empty() ? json(nullptr) : json(micros(nanos)); };
  result["min"] = value(static_cast<double>(h.min()));
  result["mean"] = value(h.mean());
  for (double percent : percentiles)
    result[percentile_key(percent)] = value(static_cast<double>(h.percentile(percent)));
  result["max"] = value(static_cast<double>(h.max()));
  json buckets = json::array();
  for (const LatencyHistogram::Bucket& bucket : h.nonempty_buckets())
    buckets.push_back({bucket.lowest, bucket.highest, bucket.count});
  result["histogram"] = {{"unit", "ns"},
                         {"min", h.min()},
                         {"max", h.max()},
                         {"sum", static_cast<double>(h.sum())},
                         {"buckets", buckets}};
  return result;
}

LatencyHistogram histogram_from_json(const json& section) {
  if (!section.is_object() || !section.contains("histogram")) {
    throw std::invalid_argument("a latency section has no \"histogram\" (made before 0.2?)");
  }
  const json& h = section.at("histogram");
  std::vector<LatencyHistogram::Bucket> buckets;
  for (const json& bucket : h.at("buckets")) {
    buckets.push_back({bucket.at(0).get<std::uint64_t>(), bucket.at(1).get<std::uint64_t>(),
                       bucket.at(2).get<std::uint64_t>()});
  }
  LatencyHistogram histogram;
  histogram.add_exported(buckets, h.at("min").get<Nanos>(), h.at("max").get<Nanos>(),
                         h.at("sum").get<double>());
  return histogram;
}

json interval_json(const IntervalStats& second) {
  const LatencyHistogram& h = second.latency;
  const auto us = [&](double percent) {
    return h.empty() ? json(nullptr) : json(micros(static_cast<double>(h.percentile(percent))));
  };
  return {{"second", second.second},
          {"messages", second.messages},
          {"errors", second.errors},
          {"p50_us", us(50)},
          {"p99_us", us(99)}};
}

std::string dump_json(const json& value, int indent) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

json build_report(const Summary& summary) {
  const Options& options = summary.setup.options;
  const WorkerStats& stats = summary.run.stats;
  const Counters& c = stats.counters;
  json report{
      {"tool", "echo-bench"},
      {"version", ECHO_BENCH_VERSION},
      {"workload", workload_name(options.workload)},
      {"status", summary.status},
      {"exit_status", summary.exit_status},
      {"suspect", !summary.suspect_reasons.empty()},
      {"suspect_reasons", summary.suspect_reasons},
      {"started_at", summary.started_at},
      {"parameters", parameters_json(summary)},
      {"measured_seconds", summary.measured_seconds},
      {"wall_seconds", summary.run.wall_seconds},
  };
  report["connections"] = {
      {"attempted", c.connections_attempted}, {"established", c.connections_established},
      {"completed", c.connections_completed}, {"open_at_end", c.connections_open_at_end},
      {"measured", c.measured_connections},   {"per_second", summary.connections_per_second}};
  report["messages"] = {{"sent", c.messages_sent},
                        {"echoed", c.messages_echoed},
                        {"lost", c.messages_lost},
                        {"cut_short", c.messages_cut_short},
                        {"unanswered", c.messages_lost + c.messages_cut_short},
                        {"due_not_sent", c.messages_due_not_sent},
                        {"measured", c.measured_messages},
                        {"per_second", summary.messages_per_second}};
  report["bytes"] = {{"sent", c.bytes_sent},
                     {"echoed", c.bytes_echoed},
                     {"measured", c.measured_bytes},
                     {"mb_per_second", summary.megabytes_per_second}};
  const LatencyHistogram* histograms[] = {&stats.latency, &stats.latency_uncorrected,
                                          &stats.connect, &stats.connection_total};
  for (std::size_t i = 0; i < kHistogramSections.size(); ++i) {
    report[std::string(kHistogramSections[i].json_key)] =
        histogram_json(*histograms[i], options.percentiles);
  }
  json parts = json::array();
  for (const PartTiming& part : stats.parts)
    parts.push_back(part.end > part.start ? json(ns_to_seconds(part.end - part.start)) : json());
  report["parts"] = parts;
  report["errors"] = errors_json(stats.errors);
  report["cpu"] = cpu_json(summary);
  report["warnings"] = summary.warnings;
  return report;
}

}  // namespace echod::bench
