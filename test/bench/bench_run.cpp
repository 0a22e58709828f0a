#include "bench_run.hpp"

#include <algorithm>
#include <cstdlib>

namespace echod::bench::test {

nlohmann::json::json_pointer BenchRun::pointer(const std::string& dotted) {
  std::string path = "/" + dotted;
  std::replace(path.begin(), path.end(), '.', '/');
  return nlohmann::json::json_pointer(path);
}

// ECHO_BENCH_UNDER_TEST runs the suite against another echo-bench build (an older one, to see
// which tests it fails); by default, the one built beside the tests.
std::string binary_under_test() {
  const char* other = std::getenv("ECHO_BENCH_UNDER_TEST");
  return other != nullptr && *other != '\0' ? other : ECHO_BENCH_BINARY;
}

BenchRun run_bench_raw(const std::vector<std::string>& args, echod::test::Millis bound) {
  const echod::test::RunResult result = echod::test::run_echod(args, bound, binary_under_test());
  BenchRun run;
  run.exit_status = result.exit_status;
  run.table = result.err;
  run.out = result.out;
  try {
    run.json = nlohmann::json::parse(result.out);
  } catch (const nlohmann::json::exception& e) {
    run.json_error = e.what();
  }
  return run;
}

BenchRun run_bench(const std::string& workload, const std::string& port,
                   const std::vector<std::string>& args, echod::test::Millis bound) {
  std::vector<std::string> command{workload, "--host", "127.0.0.1", "--port", port};
  command.insert(command.end(), args.begin(), args.end());
  command.insert(command.end(), {"--quiet", "--json", "-"});
  return run_bench_raw(command, bound);
}

}  // namespace echod::bench::test
