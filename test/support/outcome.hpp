// Results of test steps that can fail: success, or what went wrong in words.
//
// Support functions return these instead of asserting, because Catch2 v2 assertions may only be
// used on the thread running the test case; worker threads store an Outcome and the test thread
// checks it. `REQUIRE(outcome)` prints the words on failure (through operator<<).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

namespace echod::test {

using Millis = std::chrono::milliseconds;

// Bound for one blocking step (connect, send, receive) unless the caller gives another.
inline constexpr Millis kDefaultTimeout{5000};

inline constexpr std::size_t KiB = 1024;
inline constexpr std::size_t MiB = 1024 * KiB;

// What is left until `deadline`, at least 1 ms (a timeout of 0 would mean "do not wait").
[[nodiscard]] inline Millis left_until(std::chrono::steady_clock::time_point deadline) {
  return std::max(Millis{1},
                  std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now()));
}

struct Outcome {
  std::string error;     // empty on success
  int error_number = 0;  // the errno behind a failed system call (ECONNREFUSED, ...), else 0

  [[nodiscard]] explicit operator bool() const noexcept { return error.empty(); }
  static Outcome failure(std::string why, int error_number = 0) {
    return Outcome{std::move(why), error_number};
  }
};

// An Outcome carrying received bytes (complete on success, partial on failure).
struct Received : Outcome {
  std::string data;
};

inline std::ostream& operator<<(std::ostream& out, const Outcome& outcome) {
  return out << (outcome ? std::string_view("ok") : std::string_view(outcome.error));
}

// Compares without printing megabytes: on mismatch, names the first differing offset and the
// lengths, e.g. "byte 4096 of 16777216 differs: got 0x1f, expected 0xa3".
[[nodiscard]] Outcome same_bytes(std::string_view got, std::string_view expected);

// Deterministic pseudo-random numbers (splitmix64): the same seed gives the same bytes on every
// platform, so a failing payload can be reproduced from the seed in the test's output.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept;
  // Uniform in [low, high].
  std::size_t between(std::size_t low, std::size_t high) noexcept;
  // `size` pseudo-random bytes.
  std::string bytes(std::size_t size);

 private:
  std::uint64_t state_;
};

// `size` bytes determined by `seed` alone.
[[nodiscard]] std::string random_bytes(std::size_t size, std::uint64_t seed);

}  // namespace echod::test
