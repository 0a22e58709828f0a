// Latency histogram with log-linear buckets (the HdrHistogram layout): values below 512 ns are
// exact, above that every power of two is split into 512 equal buckets, so a recorded value is
// known to within 0.2% from nanoseconds up to the 2^40 ns (18 minute) ceiling. Recording is a
// few integer operations and one increment, cheap enough for every message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/clock.hpp"

namespace echod::bench {

// Not thread-safe: each worker thread records into its own and the runner merges them after the
// threads have joined.
class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 9;
  static constexpr Nanos kHighestTrackable = (Nanos{1} << 40) - 1;  // larger values are clamped

  // A non-empty bucket as reports carry it: every value in [lowest, highest] counts here.
  struct Bucket {
    std::uint64_t lowest = 0;
    std::uint64_t highest = 0;
    std::uint64_t count = 0;
  };

  void record(Nanos value);
  void merge(const LatencyHistogram& other);

  // The histogram itself, for reports that are merged later (echo-bench merge).
  [[nodiscard]] std::vector<Bucket> nonempty_buckets() const;
  [[nodiscard]] long double sum() const noexcept { return sum_; }
  // The inverse of nonempty_buckets(): adds `buckets` (each must be exactly one of this
  // layout's buckets) with the exact min, max and sum that came with them. Throws
  // std::invalid_argument for buckets of another layout.
  void add_exported(const std::vector<Bucket>& buckets, Nanos min, Nanos max, long double sum);

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
  static std::uint64_t bucket_lowest(std::size_t index);

 private:
  std::vector<std::uint64_t> counts_;  // allocated on first record: unused histograms cost nothing
  std::uint64_t count_ = 0;
  long double sum_ = 0;
  Nanos min_ = 0;
  Nanos max_ = 0;
};

}  // namespace echod::bench
