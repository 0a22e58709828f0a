#include "cli/units.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace echod::bench {
namespace {

[[noreturn]] void reject(std::string_view flag, std::string_view text, std::string_view rule) {
  throw std::invalid_argument(fmt::format("--{}={}: {}", flag, text, rule));
}

// Splits "1.5ms" into 1.5 and "ms"; the number must be plain decimal (no sign handling beyond
// what from_chars does, no hex, no "inf").
std::pair<double, std::string_view> split_number(std::string_view flag, std::string_view text,
                                                 std::string_view rule) {
  double number = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(begin, end, number, std::chars_format::fixed);
  if (error != std::errc{} || stop == begin) reject(flag, text, rule);
  if (!std::isfinite(number)) reject(flag, text, rule);
  if (number < 0) reject(flag, text, "must not be negative");
  return {number, std::string_view(stop, static_cast<std::size_t>(end - stop))};
}

}  // namespace

double parse_seconds(std::string_view flag, std::string_view text) {
  constexpr std::string_view kRule = "not a duration (e.g. 1.5, 500ms, 10s, 2m)";
  const auto [number, unit] = split_number(flag, text, kRule);
  static constexpr std::array<std::pair<std::string_view, double>, 7> kUnits{{
      {"", 1},
      {"s", 1},
      {"ms", 1e-3},
      {"us", 1e-6},
      {"ns", 1e-9},
      {"m", 60},
      {"h", 3600},
  }};
  for (const auto& [name, scale] : kUnits) {
    if (unit != name) continue;
    const double seconds = number * scale;
    if (seconds > 366.0 * 24 * 3600) reject(flag, text, "must be at most a year");
    return seconds;
  }
  reject(flag, text, kRule);
}

double parse_quantity(std::string_view flag, std::string_view text) {
  constexpr std::string_view kRule = "not a number (e.g. 100, 10k, 1.5M)";
  const auto [number, unit] = split_number(flag, text, kRule);
  double scale = 0;
  if (unit.empty()) {
    scale = 1;
  } else if (unit == "k" || unit == "K") {
    scale = 1e3;
  } else if (unit == "M") {
    scale = 1e6;
  } else if (unit == "G") {
    scale = 1e9;
  } else {
    reject(flag, text, kRule);
  }
  const double value = number * scale;
  if (!std::isfinite(value) || value > 1e15) reject(flag, text, "is too large");
  return value;
}

std::int64_t parse_count(std::string_view flag, std::string_view text, std::int64_t low,
                         std::int64_t high) {
  const double value = parse_quantity(flag, text);
  const auto rule = fmt::format("must be a whole number from {} to {}", low, high);
  if (value != std::floor(value)) reject(flag, text, rule);
  if (value < static_cast<double>(low) || value > static_cast<double>(high)) {
    reject(flag, text, rule);
  }
  return static_cast<std::int64_t>(value);
}

std::string format_seconds(double seconds) {
  if (seconds == 0) return "0";
  if (seconds < 1) return fmt::format("{:g}ms", seconds * 1e3);
  if (seconds >= 60 && std::fmod(seconds, 60) == 0) return fmt::format("{:g}m", seconds / 60);
  return fmt::format("{:g}s", seconds);
}

}  // namespace echod::bench
