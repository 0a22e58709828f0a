// Latency histogram with log-linear buckets (the HdrHistogram layout): values below 512 ns are
// exact, above that every power of two is split into 512 equal buckets, so a recorded value is
// known to within 0.2% from nanoseconds up to the 2^40 ns (18 minute) ceiling. Recording is a
// few integer operations and one increment, cheap enough for every message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "clock.hpp"

namespace echod::bench {

// Not thread-safe: each worker thread records into its own and the runner merges them after the
// threads have joined.
class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 9;
  static constexpr Nanos kHighestTrackable = (Nanos{1} << 40) - 1;  // larger values are clamped

  void record(Nanos value);
  void merge(const LatencyHistogram& other);

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  [[nodiscard]] Nanos min() const noexcept { return count_ ? min_ : 0; }
  [[nodiscard]] Nanos max() const noexcept { return count_ ? max_ : 0; }
  [[nodiscard]] double mean() const noexcept;
  // The smallest value such that `percent` of the samples are at or below it, reported as the
  // top of its bucket (so never optimistic) and clamped to [min, max]. 0 when empty.
  [[nodiscard]] Nanos percentile(double percent) const;

  // Exposed for tests of the bucket layout.
  static std::size_t bucket_index(std::uint64_t value);
  static std::uint64_t bucket_highest(std::size_t index);

 private:
  std::vector<std::uint64_t> counts_;  // allocated on first record: unused histograms cost nothing
  std::uint64_t count_ = 0;
  long double sum_ = 0;
  Nanos min_ = 0;
  Nanos max_ = 0;
};

}  // namespace echod::bench
