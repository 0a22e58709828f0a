// Per-second statistics (--interval-json, and the progress line's p99): each worker thread
// counts the second it is in and hands it over when the next begins; the runner merges every
// thread's share of a second once all of them have moved past it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "report/histogram.hpp"

namespace echod::bench {

// One second of one thread, or (merged) of all of them. Seconds count from the run's start.
struct IntervalStats {
  std::int64_t second = 0;
  std::uint64_t messages = 0;  // echoes completed in that second, warm-up included
  std::uint64_t errors = 0;
  LatencyHistogram latency;  // their round trips, from the intended send time

  void merge(const IntervalStats& other) {
    messages += other.messages;
    errors += other.errors;
    latency.merge(other.latency);
  }
};

// Where one worker thread leaves its finished seconds. Thread-safe.
class IntervalMailbox {
 public:
  static constexpr std::int64_t kAll = INT64_MAX;

  // Hands over `stats`; every second before `complete_before` is then handed over in full.
  void publish(IntervalStats&& stats, std::int64_t complete_before) {
    std::lock_guard lock(mutex_);
    finished_.push_back(std::move(stats));
    complete_before_.store(complete_before, std::memory_order_release);
  }
  void finish() { complete_before_.store(kAll, std::memory_order_release); }
  std::vector<IntervalStats> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(finished_, {});
  }
  [[nodiscard]] std::int64_t complete_before() const {
    return complete_before_.load(std::memory_order_acquire);
  }

 private:
  std::mutex mutex_;
  std::vector<IntervalStats> finished_;  // guarded by mutex_
  std::atomic<std::int64_t> complete_before_{0};
};

}  // namespace echod::bench
