// Numbers as people type them on a command line: durations with a unit (500ms, 10s, 2m) and
// counts or rates with a decimal multiplier (10k, 1.5M). Each parser names the flag in its
// error, so "--duration=-1s: ..." says which key was wrong.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace echod::bench {

// "1.5" (seconds), "500ms", "100us", "250ns", "10s", "2m", "1h". Negative, non-finite and
// absurdly large (over a year) values are rejected. Throws std::invalid_argument naming `flag`.
double parse_seconds(std::string_view flag, std::string_view text);

// "100", "10k", "1.5M", "2G" (10^3, 10^6, 10^9). Rejects negative and non-finite values.
double parse_quantity(std::string_view flag, std::string_view text);

// parse_quantity, then requires a whole number within [low, high].
std::int64_t parse_count(std::string_view flag, std::string_view text, std::int64_t low,
                         std::int64_t high);

// "10s", "500ms", "1.5s": the shortest of those that states `seconds` exactly enough for help.
std::string format_seconds(double seconds);

}  // namespace echod::bench
