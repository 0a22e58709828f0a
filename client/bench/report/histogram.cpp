#include "report/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

namespace echod::bench {
namespace {

constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << LatencyHistogram::kSubBucketBits;
constexpr int kHighestBit =
    std::bit_width(static_cast<std::uint64_t>(LatencyHistogram::kHighestTrackable)) - 1;
constexpr std::size_t kBucketCount =
    static_cast<std::size_t>(kHighestBit - LatencyHistogram::kSubBucketBits + 2) * kSubBuckets;

}  // namespace

// Values below kSubBuckets map to themselves. A larger value with highest set bit e keeps its
// top kSubBucketBits+1 bits: shift = e - kSubBucketBits drops the rest, and each exponent owns
// a block of kSubBuckets indices after the exact block.
std::size_t LatencyHistogram::bucket_index(std::uint64_t value) {
  if (value < kSubBuckets) return static_cast<std::size_t>(value);
  const int shift = std::bit_width(value) - 1 - kSubBucketBits;
  const std::uint64_t top = value >> shift;  // in [kSubBuckets, 2 * kSubBuckets)
  return static_cast<std::size_t>((static_cast<std::uint64_t>(shift) + 1) * kSubBuckets +
                                  (top - kSubBuckets));
}

std::uint64_t LatencyHistogram::bucket_highest(std::size_t index) {
  if (index < kSubBuckets) return index;
  const std::uint64_t shift = index / kSubBuckets - 1;
  const std::uint64_t top = kSubBuckets + index % kSubBuckets;
  return ((top + 1) << shift) - 1;
}

std::uint64_t LatencyHistogram::bucket_lowest(std::size_t index) {
  if (index < kSubBuckets) return index;
  const std::uint64_t shift = index / kSubBuckets - 1;
  const std::uint64_t top = kSubBuckets + index % kSubBuckets;
  return top << shift;
}

std::vector<LatencyHistogram::Bucket> LatencyHistogram::nonempty_buckets() const {
  std::vector<Bucket> result;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) result.push_back({bucket_lowest(i), bucket_highest(i), counts_[i]});
  }
  return result;
}

void LatencyHistogram::add_exported(const std::vector<Bucket>& buckets, Nanos min, Nanos max,
                                    long double sum) {
  std::uint64_t added = 0;
  for (const Bucket& bucket : buckets) {
    const std::size_t index = bucket_index(bucket.lowest);
    if (index >= kBucketCount || bucket_lowest(index) != bucket.lowest ||
        bucket_highest(index) != bucket.highest) {
      throw std::invalid_argument("histogram bucket [" + std::to_string(bucket.lowest) + ", " +
                                  std::to_string(bucket.highest) +
                                  "] is not one of echo-bench's buckets");
    }
    added += bucket.count;
  }
  if (added == 0) return;
  if (min < 0 || max < min || max > kHighestTrackable) {
    throw std::invalid_argument("histogram min/max out of range");
  }
  if (counts_.empty()) counts_.assign(kBucketCount, 0);
  for (const Bucket& bucket : buckets)
    counts_[bucket_index(bucket.lowest)] += bucket.count;
  min_ = count_ ? std::min(min_, min) : min;
  max_ = count_ ? std::max(max_, max) : max;
  count_ += added;
  sum_ += sum;
}

void LatencyHistogram::record(Nanos value) {
  value = std::clamp<Nanos>(value, 0, kHighestTrackable);
  if (counts_.empty()) counts_.assign(kBucketCount, 0);
  ++counts_[bucket_index(static_cast<std::uint64_t>(value))];
  min_ = count_ ? std::min(min_, value) : value;
  max_ = count_ ? std::max(max_, value) : value;
  ++count_;
  sum_ += static_cast<long double>(value);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  if (counts_.empty()) counts_.assign(kBucketCount, 0);
  for (std::size_t i = 0; i < kBucketCount; ++i)
    counts_[i] += other.counts_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = count_ ? std::max(max_, other.max_) : other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const noexcept {
  return count_ ? static_cast<double>(sum_ / static_cast<long double>(count_)) : 0.0;
}

Nanos LatencyHistogram::percentile(double percent) const {
  if (count_ == 0) return 0;
  percent = std::clamp(percent, 0.0, 100.0);
  const auto wanted = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= wanted) {
      return std::clamp(static_cast<Nanos>(bucket_highest(i)), min_, max_);
    }
  }
  return max_;
}

}  // namespace echod::bench
