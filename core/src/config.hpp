// echod's settings: core keys and every loaded model's keys in one Boost.Program_options
// namespace, filled from the command line and an INI file (command line wins). A config section
// [prefork] with "workers = 10" is the key prefork.workers, the same as --prefork.workers=10.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "echod/endpoint.hpp"

namespace echod {

namespace po = boost::program_options;

// Bad command line or configuration: reported as one line, exit status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The core keys and their defaults (the only place they are written).
po::options_description core_options();

// Parses argv and, if --config names one, the INI file. With `strict`, unknown keys and values
// that do not convert or are out of range are UsageErrors naming the key and where it came from
// ("command line" or "FILE:LINE"); without, unknown keys are ignored (the first pass, run before
// the models' keys are known).
po::variables_map parse_settings(int argc, const char* const argv[],
                                 const po::options_description& options, bool strict);

// The core settings, validated. Throws UsageError.
struct CoreSettings {
  std::string model;
  std::string bind;
  std::uint16_t port = 0;
  std::string metrics;         // --metrics ADDR:PORT, empty: off
  bool address_given = false;  // --bind or --port set (command line or config), not defaulted
  int backlog = 0;
  std::size_t high_water = 0;
  std::string log_level;
  std::chrono::milliseconds stop_timeout{0};
  std::chrono::milliseconds drain_timeout{0};
  EndpointLimits limits;
  std::vector<std::string> plugin_dirs;
  std::vector<std::string> plugin_files;
  bool help = false;
  bool list_models = false;
  bool describe_model = false;
  bool version = false;
  bool check_config = false;
};
CoreSettings core_settings(const po::variables_map& settings);

}  // namespace echod
