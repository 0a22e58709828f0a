// Numeric options that reject what does not fit, for core and for every model.
//
// Boost.Program_options converts with lexical_cast, which turns "-1" into SIZE_MAX for an
// unsigned option and accepts "1e9" for a double; ranges were then checked (or not) by each
// caller. A value declared with bounded() is parsed strictly (std::from_chars, whole token,
// finite) and range-checked while it is stored, so the error names the key and where it came
// from ("command line", "FILE:LINE") like every other option error.
#pragma once

#include <charconv>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

namespace echod {

namespace detail {
std::string format_bound(double value);
std::string format_bound(long long value);
std::string format_bound(unsigned long long value);
}  // namespace detail

// A po::typed_value<T> whose token must be a number in [low, high].
template <typename T>
class BoundedValue final : public boost::program_options::typed_value<T> {
 public:
  BoundedValue(T low, T high, bool zero_means_off = false)
      : boost::program_options::typed_value<T>(nullptr),
        low_(low),
        high_(high),
        zero_means_off_(zero_means_off) {}

  void xparse(boost::any& store, const std::vector<std::string>& tokens) const override {
    const std::string token = tokens.empty() ? std::string() : tokens.front();
    T value{};
    const char* end = token.data() + token.size();
    const auto [stop, error] = std::from_chars(token.data(), end, value);
    bool ok = !token.empty() && error == std::errc() && stop == end &&
              ((value >= low_ && value <= high_) || (zero_means_off_ && value == T{}));
    if constexpr (std::is_floating_point_v<T>) ok = ok && std::isfinite(value);
    if (!ok) {
      boost::program_options::error_with_option_name failure(
          "the argument ('%value%') for option '%canonical_option%' is invalid: must be " +
          range_text());
      failure.set_substitute("value", token);
      throw failure;
    }
    store = value;
  }

 private:
  std::string range_text() const {
    using Wide =
        std::conditional_t<std::is_floating_point_v<T>, double,
                           std::conditional_t<std::is_signed_v<T>, long long, unsigned long long>>;
    const std::string kind = std::is_floating_point_v<T> ? "a number" : "a whole number";
    return (zero_means_off_ ? "0 (off) or " : "") + kind + " between " +
           detail::format_bound(static_cast<Wide>(low_)) + " and " +
           detail::format_bound(static_cast<Wide>(high_));
  }

  T low_;
  T high_;
  bool zero_means_off_;
};

// bounded<int>(1, 65536)->default_value(256): declare an option that only takes numbers in range.
template <typename T>
BoundedValue<T>* bounded(T low, T high) {
  return new BoundedValue<T>(low, high);  // owned by the options_description, as po::value's
}

// bounded_or_off(1, 86400): the same, and 0 (which the key documents as "off") is accepted too.
template <typename T>
BoundedValue<T>* bounded_or_off(T low, T high) {
  return new BoundedValue<T>(low, high, /*zero_means_off=*/true);
}

// Seconds as written in options (fractions allowed), as a duration for code.
inline std::chrono::milliseconds seconds_option(const boost::program_options::variables_map& vm,
                                                const std::string& key) {
  return std::chrono::milliseconds(std::llround(vm[key].as<double>() * 1000.0));
}

}  // namespace echod
