// libFuzzer target for echo-bench's command line: the input is split at NUL bytes into
// arguments, and parse_command_line() must return (options, a merge, or an exit status with a
// message) for any of them -- never exit, abort or throw.
//
// Build: link with echo_bench_lib (or just client/bench/cli/options.cpp and cli/units.cpp with
// client/bench on the include path, ECHO_BENCH_VERSION defined, Boost::program_options and
// fmt::fmt), compiled and linked with -fsanitize=fuzzer (clang).
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "cli/options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kMaxArguments = 64;
  std::vector<std::string> words{"echo-bench"};
  std::string word;
  for (std::size_t i = 0; i < size && words.size() < kMaxArguments; ++i) {
    if (data[i] == 0) {
      words.push_back(std::move(word));
      word.clear();
    } else {
      word += static_cast<char>(data[i]);
    }
  }
  if (!word.empty() && words.size() < kMaxArguments) words.push_back(word);
  std::vector<const char*> argv;
  for (const std::string& each : words)
    argv.push_back(each.c_str());
  argv.push_back(nullptr);
  std::ostringstream out;
  std::ostringstream err;
  const echod::bench::CommandLine result =
      echod::bench::parse_command_line(static_cast<int>(words.size()), argv.data(), out, err);
  // A bad command line always says why.
  if (!result.options && !result.merge && result.exit_status != 0 && err.str().empty()) {
    __builtin_trap();
  }
  return 0;
}
