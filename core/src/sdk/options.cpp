#include "echod/options.hpp"

#include <fmt/format.h>

namespace echod::detail {

std::string format_bound(double value) {
  return fmt::format("{:g}", value);
}
std::string format_bound(long long value) {
  return std::to_string(value);
}
std::string format_bound(unsigned long long value) {
  return std::to_string(value);
}

}  // namespace echod::detail
