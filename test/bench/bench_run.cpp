#include "bench_run.hpp"

// Boost 1.74's JSON parser includes boost/bind.hpp, which asks for this.
#define BOOST_BIND_GLOBAL_PLACEHOLDERS
#include <boost/property_tree/json_parser.hpp>

#include <sstream>

namespace echod::bench::test {

BenchRun run_bench(const std::string& workload, const std::string& port,
                   const std::vector<std::string>& args, echod::test::Millis bound) {
  std::vector<std::string> command{workload, "--host", "127.0.0.1", "--port", port};
  command.insert(command.end(), args.begin(), args.end());
  command.insert(command.end(), {"--quiet", "--json", "-"});
  const echod::test::RunResult result = echod::test::run_echod(command, bound, ECHO_BENCH_BINARY);

  BenchRun run;
  run.exit_status = result.exit_status;
  run.table = result.err;
  std::istringstream out(result.out);
  try {
    boost::property_tree::read_json(out, run.json);
  } catch (const boost::property_tree::json_parser_error& e) {
    run.json_error = e.what();
  }
  return run;
}

}  // namespace echod::bench::test
