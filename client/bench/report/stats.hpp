// What one worker thread counted and timed; the runner merges every thread's into one.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/clock.hpp"
#include "engine/cpu_usage.hpp"
#include "report/error_counts.hpp"
#include "report/histogram.hpp"

namespace echod::bench {

struct Counters {
  std::uint64_t connections_attempted = 0;
  std::uint64_t connections_established = 0;
  std::uint64_t connections_completed = 0;  // churn: every exchange done, closed by us
  std::uint64_t connections_open_at_end = 0;

  // "sent" = queued for sending; at the end every sent message is echoed, lost or cut short.
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_echoed = 0;     // every byte back and verified
  std::uint64_t messages_lost = 0;       // in flight on a connection that failed
  std::uint64_t messages_cut_short = 0;  // still in flight, connection healthy, when the run ended
  // Open loop: sends the schedule wanted before sending stopped that never went out (the
  // client was still waiting for earlier echoes at --depth). Not in messages_sent.
  std::uint64_t messages_due_not_sent = 0;
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
  // Echo round trip from the intended send time; messages cut short or due and never sent are
  // in it too, at the least latency they can have had (see docs/benchmarking.md).
  LatencyHistogram latency;
  LatencyHistogram latency_uncorrected;  // from the moment its first byte was sent
  LatencyHistogram connect;              // connect() to established
  LatencyHistogram connection_total;     // churn: connect to close, every exchange included
  std::vector<PartTiming> parts;         // burst
  CpuWindow window;

  void merge(const WorkerStats& other);
};

}  // namespace echod::bench
