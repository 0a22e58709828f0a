// One clock for every timestamp echo-bench takes: CLOCK_MONOTONIC in nanoseconds, so latencies
// never jump with wall-clock adjustments.
#pragma once

#include <time.h>

#include <cmath>
#include <cstdint>

namespace echod::bench {

using Nanos = std::int64_t;

inline constexpr Nanos kNanosPerMicro = 1'000;
inline constexpr Nanos kNanosPerMilli = 1'000'000;
inline constexpr Nanos kNanosPerSecond = 1'000'000'000;
inline constexpr Nanos kNever = INT64_MAX;

inline Nanos now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return Nanos{ts.tv_sec} * kNanosPerSecond + ts.tv_nsec;
}

inline Nanos seconds_to_ns(double seconds) noexcept {
  return static_cast<Nanos>(std::llround(seconds * static_cast<double>(kNanosPerSecond)));
}

inline double ns_to_seconds(Nanos ns) noexcept {
  return static_cast<double>(ns) / static_cast<double>(kNanosPerSecond);
}

}  // namespace echod::bench
