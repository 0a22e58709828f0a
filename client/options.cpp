#include "options.hpp"

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include <algorithm>
#include <array>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace echod::bench {
namespace po = boost::program_options;
namespace {

constexpr std::array kAllWorkloads{Workload::kChurn, Workload::kSteady, Workload::kHold,
                                   Workload::kBurst};

// Which workloads a workload-specific flag belongs to.
struct FlagScope {
  std::string_view flag;
  std::vector<Workload> workloads;
};

const std::vector<FlagScope>& flag_scopes() {
  static const std::vector<FlagScope> scopes{
      {"connections", {Workload::kSteady, Workload::kHold, Workload::kBurst}},
      {"connect-concurrency", {Workload::kSteady, Workload::kHold, Workload::kBurst}},
      {"depth", {Workload::kSteady}},
      {"rate", {Workload::kSteady}},
      {"interval", {Workload::kHold}},
      {"workers", {Workload::kChurn}},
      {"iterations", {Workload::kChurn}},
      {"exchanges", {Workload::kChurn}},
      {"parts", {Workload::kBurst}},
      {"duration", {Workload::kChurn, Workload::kSteady, Workload::kHold}},
      {"warmup", {Workload::kChurn, Workload::kSteady, Workload::kHold}},
  };
  return scopes;
}

struct WorkloadDefaults {
  int connections;
  std::size_t size;
  double duration_s;
  double warmup_s;
};

WorkloadDefaults defaults_for(Workload workload) {
  switch (workload) {
    case Workload::kChurn:
      return {0, 32, 0, 0};
    case Workload::kSteady:
      return {100, 64, 10, 1};
    case Workload::kHold:
      return {1000, 32, 10, 1};
    case Workload::kBurst:
      return {1000, 32, 0, 0};
  }
  return {};
}

Workload parse_workload(const std::string& name) {
  for (Workload workload : kAllWorkloads) {
    if (workload_name(workload) == name) return workload;
  }
  throw std::invalid_argument("unknown workload '" + name +
                              "'; choose churn, steady, hold or burst");
}

template <typename T>
void require(bool ok, std::string_view flag, const T& value, std::string_view rule) {
  if (!ok) {
    std::ostringstream text;
    text << "--" << flag << "=" << value << ": " << rule;
    throw std::invalid_argument(text.str());
  }
}

void validate(Options& o) {
  require(o.port != 0, "port", o.port, "must be 1-65535");
  if (o.threads == 0)
    o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  require(o.threads >= 1 && o.threads <= 256, "threads", o.threads,
          "must be 0 (one per core) to 256");
  require(o.connections >= 0 && o.connections <= 1'000'000, "connections", o.connections,
          "must be 1 to 1000000");
  if (o.workload != Workload::kChurn) {
    require(o.connections >= 1, "connections", o.connections, "must be 1 to 1000000");
  }
  require(o.size >= 1 && o.size <= (std::size_t{16} << 20), "size", o.size,
          "must be 1 to 16777216 bytes");
  require(o.depth >= 1 && o.depth <= 4096, "depth", o.depth, "must be 1 to 4096");
  require(o.rate >= 0, "rate", o.rate, "must be >= 0 (0 = closed loop)");
  require(o.interval_s >= 0.001, "interval", o.interval_s, "must be at least 0.001 seconds");
  require(o.workers >= 1 && o.workers <= 100'000, "workers", o.workers, "must be 1 to 100000");
  require(o.iterations >= 1, "iterations", o.iterations, "must be >= 1");
  require(o.exchanges >= 0, "exchanges", o.exchanges, "must be >= 0");
  require(o.parts >= 1 && o.parts <= 1'000'000, "parts", o.parts, "must be 1 to 1000000");
  if (o.workload == Workload::kSteady || o.workload == Workload::kHold) {
    require(o.duration_s > 0, "duration", o.duration_s, "must be > 0 seconds");
  }
  require(o.duration_s >= 0, "duration", o.duration_s, "must be >= 0 seconds");
  require(o.warmup_s >= 0, "warmup", o.warmup_s, "must be >= 0 seconds");
  require(o.connect_timeout_s > 0, "connect-timeout", o.connect_timeout_s, "must be > 0 seconds");
  require(o.timeout_s > 0, "timeout", o.timeout_s, "must be > 0 seconds");
  require(o.max_time_s > 0, "max-time", o.max_time_s, "must be > 0 seconds");
  require(o.connect_concurrency >= 1, "connect-concurrency", o.connect_concurrency, "must be >= 1");
  require(o.server_pid >= 0, "server-pid", o.server_pid, "must be a process id");
}

po::options_description describe_flags(Options& o) {
  // clang-format off
  po::options_description target("Target");
  target.add_options()
      ("host", po::value(&o.host)->default_value(o.host), "echo server address or name")
      ("port,p", po::value(&o.port)->default_value(o.port), "echo server TCP port")
      ("source-ips", po::value(&o.source_ips),
       "local addresses to connect from, spread round-robin: 127.0.0.1-127.0.0.20,127.0.1.1 "
       "(past one address's ~28k ephemeral ports)");

  po::options_description load("Load (defaults per workload: churn/steady/hold/burst)");
  load.add_options()
      ("threads,t", po::value(&o.threads)->default_value(o.threads),
       "event-loop threads; 0 = one per core")
      ("connections,c", po::value<int>(),
       "connections: steady 100, hold 1000, burst 1000")
      ("size,s", po::value<std::size_t>(),
       "bytes per message: churn 32, steady 64, hold 32, burst 32")
      ("depth,P", po::value(&o.depth)->default_value(o.depth),
       "steady: messages in flight per connection (1 = ping-pong, >1 = pipelined)")
      ("rate,r", po::value(&o.rate)->default_value(o.rate),
       "steady: target messages/s over all connections, open loop, latency from the intended "
       "send time; 0 = closed loop")
      ("interval,i", po::value(&o.interval_s)->default_value(o.interval_s),
       "hold: seconds between one connection's messages")
      ("workers,w", po::value(&o.workers)->default_value(o.workers),
       "churn: concurrent connect-exchange-close loops")
      ("iterations,a", po::value(&o.iterations)->default_value(o.iterations),
       "churn: connections each worker makes, one after another")
      ("exchanges,e", po::value(&o.exchanges)->default_value(o.exchanges),
       "churn: messages sent and verified per connection")
      ("parts", po::value(&o.parts)->default_value(o.parts),
       "burst: message parts; each goes to every socket and back before the next")
      ("connect-concurrency", po::value(&o.connect_concurrency)->default_value(o.connect_concurrency),
       "connects in progress at once while opening connections (whole process)");

  po::options_description time("Time (seconds)");
  time.add_options()
      ("duration,d", po::value<double>(),
       "measured time: steady 10, hold 10; churn: optional cap, default none")
      ("warmup", po::value<double>(),
       "run this long before measuring, excluded from results: steady 1, hold 1, churn 0")
      ("connect-timeout", po::value(&o.connect_timeout_s)->default_value(o.connect_timeout_s),
       "give up on a connect after this long")
      ("timeout", po::value(&o.timeout_s)->default_value(o.timeout_s),
       "give up on an echo that has not fully come back after this long")
      ("max-time", po::value(&o.max_time_s)->default_value(o.max_time_s),
       "hard cap on the whole run, whatever happens");

  po::options_description output("Output");
  output.add_options()
      ("json", po::value(&o.json_path), "also write the results as JSON to this file (- = stdout)")
      ("quiet,q", po::bool_switch(&o.quiet), "no progress line")
      ("server-pid", po::value(&o.server_pid),
       "also report the CPU time of this local process and its descendants (the server's)")
      ("help,h", "show this help")
      ("version", "show the version");
  // clang-format on

  po::options_description all;
  all.add(target).add(load).add(time).add(output);
  return all;
}

void print_usage(std::ostream& out, const po::options_description& flags) {
  out << "Usage: echo-bench WORKLOAD [options]\n"
         "Measures any TCP echo server and verifies every byte it echoes.\n\n"
         "Workloads:\n"
         "  churn   workers connect, exchange --exchanges messages, close, --iterations times\n"
         "  steady  persistent connections, ping-pong or pipelined, optionally at a fixed --rate\n"
         "  hold    many mostly idle connections, one message each per --interval\n"
         "  burst   connect every socket, then each --parts part out to all and back\n\n"
      << flags
      << "\nExit status: 0 every echo verified and no errors; 1 errors, unanswered messages or a "
         "run cut short;\n2 bad command line; 3 could not start.\n";
}

}  // namespace

std::string_view workload_name(Workload workload) {
  switch (workload) {
    case Workload::kChurn:
      return "churn";
    case Workload::kSteady:
      return "steady";
    case Workload::kHold:
      return "hold";
    case Workload::kBurst:
      return "burst";
  }
  return "unknown";
}

int concurrent_sockets(const Options& options) {
  return options.workload == Workload::kChurn ? options.workers : options.connections;
}

CommandLine parse_command_line(int argc, const char* const* argv, std::ostream& out,
                               std::ostream& err) {
  Options options;
  po::options_description flags = describe_flags(options);
  po::options_description everything;
  everything.add(flags).add_options()("workload", po::value<std::string>());
  po::positional_options_description positional;
  positional.add("workload", 1);

  try {
    po::variables_map given;
    po::store(po::command_line_parser(argc, argv)
                  .options(everything)
                  .positional(positional)
                  .style(po::command_line_style::unix_style)
                  .run(),
              given);
    if (given.count("help")) {
      print_usage(out, flags);
      return {std::nullopt, 0};
    }
    if (given.count("version")) {
      out << "echo-bench " << ECHO_BENCH_VERSION << "\n";
      return {std::nullopt, 0};
    }
    po::notify(given);
    if (!given.count("workload")) {
      throw std::invalid_argument("name a workload: churn, steady, hold or burst");
    }
    options.workload = parse_workload(given["workload"].as<std::string>());

    for (const FlagScope& scope : flag_scopes()) {
      const auto& value = given[std::string(scope.flag)];
      if (value.empty() || value.defaulted()) continue;
      if (std::find(scope.workloads.begin(), scope.workloads.end(), options.workload) ==
          scope.workloads.end()) {
        throw std::invalid_argument(
            fmt::format("--{} does not apply to {}", scope.flag, workload_name(options.workload)));
      }
    }

    const WorkloadDefaults defaults = defaults_for(options.workload);
    options.connections =
        given.count("connections") ? given["connections"].as<int>() : defaults.connections;
    options.size = given.count("size") ? given["size"].as<std::size_t>() : defaults.size;
    options.duration_s =
        given.count("duration") ? given["duration"].as<double>() : defaults.duration_s;
    options.warmup_s = given.count("warmup") ? given["warmup"].as<double>() : defaults.warmup_s;
    validate(options);
    return {options, 0};
  } catch (const std::exception& e) {
    err << "echo-bench: " << e.what() << "\n(see echo-bench --help)\n";
    return {std::nullopt, 2};
  }
}

}  // namespace echod::bench
