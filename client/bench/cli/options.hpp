// echo-bench's command line: a workload name (or `merge`), an optional [HOST:]PORT, then flags.
// Every flag has a default, some of them per workload (`echo-bench WORKLOAD --help` lists that
// workload's); a flag that does not apply to the chosen workload is an error rather than
// silently ignored. Parsing never exits the process: it returns what to do, or an exit status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace echod::bench {

enum class Workload { kChurn, kSteady, kHold, kBurst };
std::string_view workload_name(Workload workload);

// steady --find-rate p99=1ms: the highest open-loop rate whose percentile stays under target.
struct RateSearch {
  double percent = 99;
  double target_s = 0.001;
  std::string text;  // as given, for the report
};

struct Options {
  Workload workload = Workload::kSteady;

  // Where and how.
  std::string host = "127.0.0.1";
  std::uint16_t port = 7777;
  int threads = 1;
  std::string source_ips;  // "A-B" ranges and single addresses, comma-separated; empty = any
  int connect_concurrency = 1000;
  double connect_rate = 0;  // new connections per second over all threads; 0 = as fast as allowed

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
  std::optional<RateSearch> find_rate;  // steady

  // How long.
  double duration_s = 0;  // measured time (steady, hold); churn: optional cap, 0 = none
  double warmup_s = 0;    // run before the measurement starts, excluded from results
  double connect_timeout_s = 5;
  double timeout_s = 5;  // for each echo to come back in full, from its first byte's send
  double max_time_s = 300;

  // Output.
  std::string json_path;           // "-" = stdout
  std::string interval_json_path;  // one JSON line per second; "-" = stdout
  std::vector<double> percentiles{50, 90, 99, 99.9};
  double saturated_percent = 90;  // a client thread this busy makes the run suspect
  bool quiet = false;
  int server_pid = 0;  // also report this process's CPU time
};

// `echo-bench merge [--json FILE] [--percentiles ...] A.json B.json ...`
struct MergeRequest {
  std::vector<std::string> inputs;
  std::string json_path;
  std::vector<double> percentiles{50, 90, 99, 99.9};
};

// The result of parsing: options to run with, a merge to do, or the exit status to leave with
// (0 after --help or --version, 2 after a bad command line; the text has already been written).
struct CommandLine {
  std::optional<Options> options;
  std::optional<MergeRequest> merge;
  int exit_status = 0;
};

CommandLine parse_command_line(int argc, const char* const* argv, std::ostream& out,
                               std::ostream& err);

// "50,90,99.9" -> {50, 90, 99.9}; each in (0, 100], ascending. Throws std::invalid_argument.
std::vector<double> parse_percentiles(std::string_view text);
// The JSON key and table label of a percentile: 99.9 -> "p99_9" and "p99.9".
std::string percentile_key(double percent);
std::string percentile_label(double percent);

// Total sockets the run opens at once (connections, or churn's workers).
int concurrent_sockets(const Options& options);

}  // namespace echod::bench
