// echo-bench: measures a TCP echo server (any, not only echod) and verifies every echoed byte.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <stdexcept>

#include "addresses.hpp"
#include "descriptor_limit.hpp"
#include "options.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "summary.hpp"

namespace {

using namespace echod::bench;

constexpr int kExitBadCommandLine = 2;
constexpr int kExitCannotStart = 3;
constexpr std::size_t kSpareDescriptors = 32;  // stdio, epoll instances, /proc reads

// Resolves addresses and checks limits; the error message and exit status on failure.
int prepare(RunSetup& setup) {
  const Options& options = setup.options;
  try {
    setup.sources = parse_source_addresses(options.source_ips);
  } catch (const std::invalid_argument& e) {
    std::cerr << "echo-bench: " << e.what() << "\n";
    return kExitBadCommandLine;
  }
  try {
    setup.target = resolve_target(options.host, options.port);
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

}  // namespace

int main(int argc, char** argv) {
  const CommandLine command_line = parse_command_line(argc, argv, std::cout, std::cerr);
  if (!command_line.options) return command_line.exit_status;
  RunSetup setup{*command_line.options, {}, {}};
  if (const int status = prepare(setup); status != 0) return status;

  const Options& options = setup.options;
  install_signal_handlers();
  const bool show_progress = !options.quiet && ::isatty(STDERR_FILENO) == 1;
  const std::string started_at = utc_timestamp_now();
  const RunResult run = run_benchmark(setup, show_progress);
  const Summary summary = summarize(setup, run, started_at);

  // With --json - the JSON owns stdout, and the table moves to stderr.
  const bool json_to_stdout = options.json_path == "-";
  print_table(json_to_stdout ? std::cerr : std::cout, summary);
  if (json_to_stdout) {
    write_json(std::cout, summary);
  } else if (!options.json_path.empty()) {
    std::ofstream file(options.json_path);
    write_json(file, summary);
    file.flush();
    if (!file) {
      std::cerr << "echo-bench: cannot write --json " << options.json_path << "\n";
      return kExitCannotStart;
    }
  }
  return summary.exit_status;
}
