// echo-bench: measures a TCP echo server (any, not only echod) and verifies every echoed byte.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "cli/options.hpp"
#include "engine/rate_search.hpp"
#include "engine/runner.hpp"
#include "net/addresses.hpp"
#include "net/descriptor_limit.hpp"
#include "report/report.hpp"
#include "report/summary.hpp"

namespace {

using namespace echod::bench;
using nlohmann::json;

constexpr int kExitBadCommandLine = 2;
constexpr int kExitCannotStart = 3;
constexpr std::size_t kSpareDescriptors = 32;  // stdio, epoll instances, /proc reads

// Resolves addresses, picks the one that accepts, and checks limits; the error message and exit
// status on failure.
int prepare(RunSetup& setup) {
  const Options& options = setup.options;
  try {
    setup.sources = parse_source_addresses(options.source_ips);
  } catch (const std::invalid_argument& e) {
    std::cerr << "echo-bench: " << e.what() << "\n";
    return kExitBadCommandLine;
  }
  try {
    setup.resolved = resolve_targets(options.host, options.port);
    // A name may resolve to several addresses (::1 and 127.0.0.1 for localhost): use the first
    // that accepts, or the first at all (the run then reports why connecting failed).
    const SocketAddress* chosen = setup.resolved.size() == 1
                                      ? &setup.resolved.front()
                                      : first_accepting(setup.resolved, options.connect_timeout_s);
    setup.target = chosen != nullptr ? *chosen : setup.resolved.front();
    for (const SocketAddress& source : setup.sources) {
      if (source.family() != setup.target.family()) {
        std::cerr << "echo-bench: --source-ips mixes address families with --host " << options.host
                  << "\n";
        return kExitBadCommandLine;
      }
    }
    ensure_descriptor_limit(static_cast<std::size_t>(concurrent_sockets(options)) +
                            static_cast<std::size_t>(options.threads) + kSpareDescriptors);
  } catch (const std::runtime_error& e) {
    std::cerr << "echo-bench: " << e.what() << "\n";
    return kExitCannotStart;
  }
  return 0;
}

// Writes `report` to `path` ("-" = stdout); false when the file could not be written.
bool write_report(const std::string& path, const json& report) {
  if (path == "-") {
    std::cout << dump_json(report) << "\n";
    return true;
  }
  std::ofstream file(path);
  file << dump_json(report) << "\n";
  file.flush();
  return static_cast<bool>(file);
}

int merge(const MergeRequest& request) {
  std::vector<json> reports;
  for (const std::string& path : request.inputs) {
    std::ifstream file(path);
    if (!file) {
      std::cerr << "echo-bench: merge: cannot read " << path << "\n";
      return kExitCannotStart;
    }
    try {
      reports.push_back(json::parse(file));
    } catch (const json::parse_error& e) {
      std::cerr << "echo-bench: merge: " << path << " is not JSON: " << e.what() << "\n";
      return kExitBadCommandLine;
    }
  }
  json merged;
  try {
    merged = merge_reports(reports, request.inputs, request.percentiles);
  } catch (const std::exception& e) {
    std::cerr << "echo-bench: merge: " << e.what() << "\n";
    return kExitBadCommandLine;
  }
  const bool json_to_stdout = request.json_path == "-";
  print_table(json_to_stdout ? std::cerr : std::cout, merged);
  if (!request.json_path.empty() && !write_report(request.json_path, merged)) {
    std::cerr << "echo-bench: cannot write --json " << request.json_path << "\n";
    return kExitCannotStart;
  }
  return merged.at("exit_status").get<int>();
}

json rate_search_json(const RateSearchOutcome& outcome, const RateSearch& search) {
  json trials = json::array();
  for (const RateTrial& trial : outcome.trials) {
    trials.push_back({{"rate", trial.rate},
                      {"percentile_us", trial.percentile_us ? json(*trial.percentile_us) : json()},
                      {"status", trial.status},
                      {"suspect", trial.suspect},
                      {"passed", trial.passed}});
  }
  return {{"target", search.text},
          {"percentile", search.percent},
          {"target_us", search.target_s * 1e6},
          {"rate", outcome.best_rate ? json(*outcome.best_rate) : json()},
          {"trials", trials}};
}

}  // namespace

int main(int argc, char** argv) {
  const CommandLine command_line = parse_command_line(argc, argv, std::cout, std::cerr);
  if (command_line.merge) return merge(*command_line.merge);
  if (!command_line.options) return command_line.exit_status;
  RunSetup setup{*command_line.options, {}, {}, {}};
  if (const int status = prepare(setup); status != 0) return status;

  const Options& options = setup.options;
  install_signal_handlers();
  RunMonitor monitor;
  monitor.show_progress = !options.quiet && ::isatty(STDERR_FILENO) == 1;
  std::ofstream interval_file;
  std::ostream* interval_out = nullptr;
  if (!options.interval_json_path.empty()) {
    if (options.interval_json_path == "-") {
      interval_out = &std::cout;
    } else {
      interval_file.open(options.interval_json_path);
      if (!interval_file) {
        std::cerr << "echo-bench: cannot write --interval-json " << options.interval_json_path
                  << "\n";
        return kExitCannotStart;
      }
      interval_out = &interval_file;
    }
    monitor.on_interval = [interval_out](const IntervalStats& second) {
      *interval_out << dump_json(interval_json(second), -1) << "\n";
      interval_out->flush();
    };
  }

  json report;
  if (options.find_rate) {
    const RateSearchOutcome outcome = search_rate(setup, monitor, std::cerr);
    const Summary summary = summarize(*outcome.setup, *outcome.run, outcome.started_at);
    report = build_report(summary);
    report["find_rate"] = rate_search_json(outcome, *options.find_rate);
    if (!outcome.best_rate) {
      report["status"] = "errors";
      report["exit_status"] = kExitErrors;
      report["warnings"].push_back("--find-rate: no rate met " + options.find_rate->text);
    }
  } else {
    const std::string started_at = utc_timestamp_now();
    const RunResult run = run_benchmark(setup, monitor);
    report = build_report(summarize(setup, run, started_at));
  }

  // With --json - the JSON owns stdout, and the table moves to stderr.
  const bool json_to_stdout = options.json_path == "-" || options.interval_json_path == "-";
  print_table(json_to_stdout ? std::cerr : std::cout, report);
  if (options.find_rate) {
    std::ostream& out = json_to_stdout ? std::cerr : std::cout;
    const json& found = report.at("find_rate").at("rate");
    out << "find-rate     " << options.find_rate->text << ": "
        << (found.is_null() ? std::string("no rate met it")
                            : "highest rate " + found.dump() + " msg/s")
        << " (" << report.at("find_rate").at("trials").size() << " trials)\n";
  }
  if (!options.json_path.empty() && !write_report(options.json_path, report)) {
    std::cerr << "echo-bench: cannot write --json " << options.json_path << "\n";
    return kExitCannotStart;
  }
  return report.at("exit_status").get<int>();
}
