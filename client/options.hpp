// echo-bench's command line: one workload name, then flags. Every flag has a default, some of
// them per workload (see docs/benchmarking.md); a flag that does not apply to the chosen
// workload is an error rather than silently ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

namespace echod::bench {

enum class Workload { kChurn, kSteady, kHold, kBurst };
std::string_view workload_name(Workload workload);

struct Options {
  Workload workload = Workload::kSteady;

  // Where and how.
  std::string host = "127.0.0.1";
  std::uint16_t port = 7777;
  int threads = 1;
  std::string source_ips;  // "A-B" ranges and single addresses, comma-separated; empty = any
  int connect_concurrency = 1000;

  // What each workload sends.
  int connections = 0;    // steady, hold, burst
  std::size_t size = 0;   // bytes per message
  int depth = 1;          // steady: messages in flight per connection (1 = ping-pong)
  double rate = 0;        // steady: messages/s over all connections; 0 = closed loop
  double interval_s = 1;  // hold: seconds between one connection's messages
  int workers = 10;       // churn: concurrent connect-exchange-close loops
  int iterations = 100;   // churn: connections each worker makes
  int exchanges = 10;     // churn: messages per connection
  int parts = 3;          // burst: message parts, each sent on every socket before the next

  // How long.
  double duration_s = 0;  // measured time (steady, hold); churn: optional cap, 0 = none
  double warmup_s = 0;    // run before the measurement starts, excluded from results
  double connect_timeout_s = 5;
  double timeout_s = 5;  // for each echo to come back in full
  double max_time_s = 300;

  // Output.
  std::string json_path;  // "-" = stdout
  bool quiet = false;
  int server_pid = 0;  // also report this process's CPU time
};

// The result of parsing: options to run with, or the exit status to leave with (0 after --help
// or --version, 2 after a bad command line; the text has already been written).
struct CommandLine {
  std::optional<Options> options;
  int exit_status = 0;
};

CommandLine parse_command_line(int argc, const char* const* argv, std::ostream& out,
                               std::ostream& err);

// Total sockets the run opens at once (connections, or churn's workers).
int concurrent_sockets(const Options& options);

}  // namespace echod::bench
