#include "json_writer.hpp"
#include "report.hpp"

namespace echod::bench {
namespace {

double micros(double nanos) {
  return nanos / 1e3;
}

void write_histogram(JsonWriter& json, const LatencyHistogram& h) {
  json.begin_object();
  json.field("count", h.count());
  if (h.empty()) {
    for (std::string_view name : {"min", "mean"})
      json.key(name).null();
    for (const PercentileColumn& column : kPercentiles)
      json.key(column.json_key).null();
    json.key("max").null();
  } else {
    json.field("min", micros(static_cast<double>(h.min())));
    json.field("mean", micros(h.mean()));
    for (const PercentileColumn& column : kPercentiles)
      json.field(column.json_key, micros(static_cast<double>(h.percentile(column.percent))));
    json.field("max", micros(static_cast<double>(h.max())));
  }
  json.end_object();
}

// Parameters that do not apply to the workload are null, so every report has the same keys.
template <typename T>
void applicable(JsonWriter& json, std::string_view name, bool applies, const T& value) {
  if (applies) {
    json.field(name, value);
  } else {
    json.key(name).null();
  }
}

void write_parameters(JsonWriter& json, const Summary& summary) {
  const Options& o = summary.setup.options;
  const bool churn = o.workload == Workload::kChurn;
  const bool steady = o.workload == Workload::kSteady;
  json.key("parameters").begin_object();
  json.field("host", o.host);
  json.field("port", static_cast<int>(o.port));
  json.field("target", summary.setup.target.to_string());
  json.field("threads", o.threads);
  json.field("source_ips", o.source_ips);
  json.field("source_ip_count", static_cast<std::uint64_t>(summary.setup.sources.size()));
  json.field("size", static_cast<std::uint64_t>(o.size));
  applicable(json, "connections", !churn, o.connections);
  applicable(json, "connect_concurrency", !churn, o.connect_concurrency);
  applicable(json, "depth", steady, o.depth);
  applicable(json, "rate", steady, o.rate);
  applicable(json, "interval_s", o.workload == Workload::kHold, o.interval_s);
  applicable(json, "workers", churn, o.workers);
  applicable(json, "iterations", churn, o.iterations);
  applicable(json, "exchanges", churn, o.exchanges);
  applicable(json, "parts", o.workload == Workload::kBurst, o.parts);
  applicable(json, "duration_s", o.workload != Workload::kBurst, o.duration_s);
  applicable(json, "warmup_s", o.workload != Workload::kBurst, o.warmup_s);
  json.field("connect_timeout_s", o.connect_timeout_s);
  json.field("timeout_s", o.timeout_s);
  json.field("max_time_s", o.max_time_s);
  applicable(json, "server_pid", o.server_pid > 0, o.server_pid);
  json.end_object();
}

void write_errors(JsonWriter& json, const ErrorCounts& errors) {
  json.key("errors").begin_object();
  json.field("total", errors.total());
  for (std::size_t i = 0; i < kErrorKindCount; ++i)
    json.field(error_kind_name(static_cast<ErrorKind>(i)), errors.by_kind[i]);
  json.key("by_errno").begin_object();
  for (const auto& [name, count] : errors.by_errno)
    json.field(name, count);
  json.end_object();
  json.key("first_mismatch");
  if (const auto& m = errors.first_mismatch) {
    json.begin_object();
    json.field("connection", m->connection);
    json.field("stream_offset", m->stream_offset);
    json.key("expected");
    if (m->expected < 0) {
      json.null();
    } else {
      json.value(m->expected);
    }
    json.field("received", m->received);
    json.end_object();
  } else {
    json.null();
  }
  json.end_object();
}

void write_cpu(JsonWriter& json, const Summary& summary) {
  const CpuWindow& window = summary.run.stats.window;
  json.key("cpu").begin_object();
  json.field("seconds", summary.measured_seconds);
  json.key("client").begin_object();
  json.field("user_s", window.client.user_s);
  json.field("system_s", window.client.system_s);
  json.field("percent_of_one_core", summary.client_cpu_percent);
  json.field("busiest_thread_percent", summary.busiest_thread_percent);
  json.end_object();
  json.key("server");
  if (window.server && summary.server_cpu_percent) {
    json.begin_object();
    json.field("pid", summary.setup.options.server_pid);
    json.field("user_s", window.server->user_s);
    json.field("system_s", window.server->system_s);
    json.field("percent_of_one_core", *summary.server_cpu_percent);
    json.end_object();
  } else {
    json.null();
  }
  json.end_object();
}

}  // namespace

void write_json(std::ostream& out, const Summary& summary) {
  const WorkerStats& stats = summary.run.stats;
  const Counters& c = stats.counters;
  JsonWriter json(out);
  json.begin_object();
  json.field("tool", "echo-bench");
  json.field("version", ECHO_BENCH_VERSION);
  json.field("workload", workload_name(summary.setup.options.workload));
  json.field("status", summary.status);
  json.field("exit_status", summary.exit_status);
  json.field("started_at", summary.started_at);
  write_parameters(json, summary);
  json.field("measured_seconds", summary.measured_seconds);
  json.field("wall_seconds", summary.run.wall_seconds);

  json.key("connections").begin_object();
  json.field("attempted", c.connections_attempted);
  json.field("established", c.connections_established);
  json.field("completed", c.connections_completed);
  json.field("open_at_end", c.connections_open_at_end);
  json.field("measured", c.measured_connections);
  json.field("per_second", summary.connections_per_second);
  json.end_object();

  json.key("messages").begin_object();
  json.field("sent", c.messages_sent);
  json.field("echoed", c.messages_echoed);
  json.field("unanswered", c.messages_unanswered);
  json.field("measured", c.measured_messages);
  json.field("per_second", summary.messages_per_second);
  json.end_object();

  json.key("bytes").begin_object();
  json.field("sent", c.bytes_sent);
  json.field("echoed", c.bytes_echoed);
  json.field("measured", c.measured_bytes);
  json.field("mb_per_second", summary.megabytes_per_second);
  json.end_object();

  for (const HistogramSection& section : histogram_sections(summary)) {
    json.key(section.json_key);
    write_histogram(json, section.histogram);
  }

  json.key("parts").begin_array();
  for (const PartTiming& part : stats.parts) {
    if (part.end > part.start) {
      json.value(ns_to_seconds(part.end - part.start));
    } else {
      json.null();
    }
  }
  json.end_array();

  write_errors(json, stats.errors);
  write_cpu(json, summary);
  json.key("warnings").begin_array();
  for (const std::string& warning : summary.warnings)
    json.value(warning);
  json.end_array();
  json.end_object();
}

}  // namespace echod::bench
