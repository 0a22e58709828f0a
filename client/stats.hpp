// What one worker thread counted and timed; the runner merges every thread's into one.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "clock.hpp"
#include "cpu_usage.hpp"
#include "error_counts.hpp"
#include "histogram.hpp"

namespace echod::bench {

struct Counters {
  std::uint64_t connections_attempted = 0;
  std::uint64_t connections_established = 0;
  std::uint64_t connections_completed = 0;  // churn: every exchange done, closed by us
  std::uint64_t connections_open_at_end = 0;

  // "sent" = queued for sending; at the end every sent message is echoed or unanswered.
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_echoed = 0;      // every byte back and verified
  std::uint64_t messages_unanswered = 0;  // on a connection that failed, or cut short at the end
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_echoed = 0;  // verified bytes, counted as they arrive

  // Inside the measurement window (after the warm-up; see docs/benchmarking.md).
  std::uint64_t measured_messages = 0;
  std::uint64_t measured_bytes = 0;
  std::uint64_t measured_connections = 0;  // churn

  void merge(const Counters& other);
};

// The measurement window of one thread and what the CPU did in it.
struct CpuWindow {
  Nanos start = kNever;
  Nanos end = 0;
  CpuTime client;                      // summed over threads
  double busiest_thread_fraction = 0;  // the most loaded thread's CPU / its window
  std::optional<CpuTime> server;       // --server-pid, sampled by thread 0

  [[nodiscard]] double seconds() const { return end > start ? ns_to_seconds(end - start) : 0; }
  void merge(const CpuWindow& other);
};

// burst: when one part started going out and when its last echo came back.
struct PartTiming {
  Nanos start = kNever;
  Nanos end = 0;
};

// Owned by one worker thread until it has joined; then read by the runner.
struct WorkerStats {
  Counters counters;
  ErrorCounts errors;
  LatencyHistogram latency;              // echo round trip from the intended send time
  LatencyHistogram latency_uncorrected;  // from the moment it was actually sent
  LatencyHistogram connect;              // connect() to established
  LatencyHistogram connection_total;     // churn: connect to close, every exchange included
  std::vector<PartTiming> parts;         // burst
  CpuWindow window;

  void merge(const WorkerStats& other);
};

}  // namespace echod::bench
