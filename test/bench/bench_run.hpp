// Runs echo-bench as a child process with --json - and parses the report it prints.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "echod_process.hpp"

#ifndef ECHO_BENCH_BINARY
#error "ECHO_BENCH_BINARY (the echo-bench under test) is set by test/bench/CMakeLists.txt"
#endif

namespace echod::bench::test {

struct BenchRun {
  std::optional<int> exit_status;  // nullopt: still running after the test's bound, killed
  std::string table;               // the human table (stderr, since the JSON owns stdout)
  std::string out;                 // stdout as printed
  nlohmann::json json;             // null when stdout was not JSON
  std::string json_error;          // why it was not

  // A field of the JSON report by dotted path ("messages.sent"); throws if missing.
  template <typename T>
  [[nodiscard]] T get(const std::string& path) const {
    return json.at(pointer(path)).get<T>();
  }
  [[nodiscard]] bool has(const std::string& path) const { return json.contains(pointer(path)); }
  [[nodiscard]] bool is_null(const std::string& path) const {
    return json.at(pointer(path)).is_null();
  }
  static nlohmann::json::json_pointer pointer(const std::string& dotted);
};

// echo-bench WORKLOAD --host 127.0.0.1 --port PORT args... --quiet --json -, killed after
// `bound`.
BenchRun run_bench(const std::string& workload, const std::string& port,
                   const std::vector<std::string>& args,
                   echod::test::Millis bound = echod::test::Millis{60000});

// echo-bench with exactly these arguments; stdout parsed as JSON if it is.
BenchRun run_bench_raw(const std::vector<std::string>& args,
                       echod::test::Millis bound = echod::test::Millis{60000});

}  // namespace echod::bench::test
