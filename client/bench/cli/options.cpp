#include "cli/options.hpp"

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include <algorithm>
#include <array>
#include <climits>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cli/units.hpp"
#include "echod/option_words.hpp"

namespace echod::bench {
namespace po = boost::program_options;
namespace {

constexpr std::array kAllWorkloads{Workload::kChurn, Workload::kSteady, Workload::kHold,
                                   Workload::kBurst};
using Workloads = std::vector<Workload>;
const Workloads kEvery{};  // empty: the flag applies to every workload
const Workloads kConnected{Workload::kSteady, Workload::kHold, Workload::kBurst};
const Workloads kTimed{Workload::kChurn, Workload::kSteady, Workload::kHold};

// One flag: its boost name ("duration,d"), where it applies, its default for a workload ("" =
// none), and how its text becomes an Options field. Defaults go through apply() too, so a
// default and a typed value are checked and converted the same way.
struct Flag {
  std::string_view name;
  std::string_view group;
  Workloads workloads;
  std::string_view help;
  std::function<std::string(Workload)> default_for;
  std::function<void(Options&, const std::string&)> apply;

  [[nodiscard]] std::string long_name() const {
    return std::string(name.substr(0, name.find(',')));
  }
  [[nodiscard]] bool applies_to(Workload workload) const {
    return workloads.empty() ||
           std::find(workloads.begin(), workloads.end(), workload) != workloads.end();
  }
};

std::function<std::string(Workload)> always(std::string text) {
  return [text = std::move(text)](Workload) { return text; };
}
std::function<std::string(Workload)> per_workload(std::string churn, std::string steady,
                                                  std::string hold, std::string burst) {
  return [=](Workload w) {
    switch (w) {
      case Workload::kChurn:
        return churn;
      case Workload::kSteady:
        return steady;
      case Workload::kHold:
        return hold;
      case Workload::kBurst:
        return burst;
    }
    return std::string();
  };
}

int to_int(std::int64_t value) {
  return static_cast<int>(value);
}

[[noreturn]] void reject(std::string_view flag, std::string_view text, std::string_view rule) {
  throw std::invalid_argument(fmt::format("--{}={}: {}", flag, text, rule));
}

double positive_seconds(std::string_view flag, const std::string& text) {
  const double seconds = parse_seconds(flag, text);
  if (seconds <= 0) reject(flag, text, "must be more than 0");
  return seconds;
}

RateSearch parse_rate_search(const std::string& text) {
  // p99=1ms, p99.9=500us
  const auto equals = text.find('=');
  if (text.empty() || text[0] != 'p' || equals == std::string::npos) {
    reject("find-rate", text, "must be PERCENTILE=LATENCY, e.g. p99=1ms");
  }
  RateSearch search;
  const auto percentiles = parse_percentiles(text.substr(1, equals - 1));
  if (percentiles.size() != 1) reject("find-rate", text, "names one percentile, e.g. p99=1ms");
  search.percent = percentiles.front();
  search.target_s = parse_seconds("find-rate", text.substr(equals + 1));
  if (search.target_s <= 0) reject("find-rate", text, "the latency must be more than 0");
  search.text = text;
  return search;
}

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table{
      // Target.
      {"host", "Target", kEvery,
       "echo server address or name; every address it resolves to is "
       "tried in turn until one accepts",
       always("127.0.0.1"), [](Options& o, const std::string& v) { o.host = v; }},
      {"port,p", "Target", kEvery, "echo server TCP port (or give [HOST:]PORT after the workload)",
       always("7777"),
       [](Options& o, const std::string& v) {
         o.port = static_cast<std::uint16_t>(parse_count("port", v, 1, 65535));
       }},
      {"source-ips", "Target", kEvery,
       "local addresses to connect from, round-robin: 127.0.0.1-127.0.0.20,127.0.1.1 (past one "
       "address's ~28k ephemeral ports)",
       always(""), [](Options& o, const std::string& v) { o.source_ips = v; }},
      // Load.
      {"threads,t", "Load", kEvery, "event-loop threads; 0 = one per core", always("1"),
       [](Options& o, const std::string& v) {
         o.threads = to_int(parse_count("threads", v, 0, 256));
         if (o.threads == 0)
           o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
       }},
      {"connections,c", "Load", kConnected, "connections (default: steady 100, hold/burst 1000)",
       per_workload("", "100", "1000", "1000"),
       [](Options& o, const std::string& v) {
         o.connections = to_int(parse_count("connections", v, 1, 1'000'000));
       }},
      {"size,s", "Load", kEvery, "bytes per message (default: steady 64, others 32)",
       per_workload("32", "64", "32", "32"),
       [](Options& o, const std::string& v) {
         o.size = static_cast<std::size_t>(parse_count("size", v, 1, std::int64_t{16} << 20));
       }},
      {"depth,P",
       "Load",
       {Workload::kSteady},
       "messages in flight per connection (1 = ping-pong, >1 = pipelined)",
       always("1"),
       [](Options& o, const std::string& v) {
         o.depth = to_int(parse_count("depth", v, 1, 4096));
       }},
      {"rate,r",
       "Load",
       {Workload::kSteady},
       "target messages/s over all connections, open loop, latency from the intended send time; "
       "0 = closed loop (10k, 1.5M work)",
       always("0"),
       [](Options& o, const std::string& v) { o.rate = parse_quantity("rate", v); }},
      {"find-rate",
       "Load",
       {Workload::kSteady},
       "search for the highest --rate whose percentile stays under a latency with no errors, "
       "e.g. p99=1ms (starts at --rate, or 1000/s)",
       always(""),
       [](Options& o, const std::string& v) { o.find_rate = parse_rate_search(v); }},
      {"interval,i",
       "Load",
       {Workload::kHold},
       "time between one connection's messages",
       always("1s"),
       [](Options& o, const std::string& v) {
         o.interval_s = parse_seconds("interval", v);
         if (o.interval_s < 0.001) reject("interval", v, "must be at least 1ms");
       }},
      {"workers,w",
       "Load",
       {Workload::kChurn},
       "concurrent connect-exchange-close loops",
       always("10"),
       [](Options& o, const std::string& v) {
         o.workers = to_int(parse_count("workers", v, 1, 100'000));
       }},
      {"iterations,a",
       "Load",
       {Workload::kChurn},
       "connections each worker makes, one after another",
       always("100"),
       [](Options& o, const std::string& v) {
         o.iterations = to_int(parse_count("iterations", v, 1, INT_MAX));
       }},
      {"exchanges,e",
       "Load",
       {Workload::kChurn},
       "messages sent and verified per connection",
       always("10"),
       [](Options& o, const std::string& v) {
         o.exchanges = to_int(parse_count("exchanges", v, 0, INT_MAX));
       }},
      {"parts",
       "Load",
       {Workload::kBurst},
       "message parts; each goes to every socket and back before the next",
       always("3"),
       [](Options& o, const std::string& v) {
         o.parts = to_int(parse_count("parts", v, 1, 1'000'000));
       }},
      {"connect-concurrency", "Load", kConnected,
       "connects in progress at once while opening connections (whole process)", always("1000"),
       [](Options& o, const std::string& v) {
         o.connect_concurrency = to_int(parse_count("connect-concurrency", v, 1, 1'000'000));
       }},
      {"connect-rate", "Load", kConnected,
       "open at most this many connections per second (whole process); 0 = no limit", always("0"),
       [](Options& o, const std::string& v) {
         o.connect_rate = parse_quantity("connect-rate", v);
       }},
      // Time.
      {"duration,d", "Time", kTimed,
       "measured time (default: steady/hold 10s; churn: an optional cap, none by default)",
       per_workload("0", "10s", "10s", ""),
       [](Options& o, const std::string& v) { o.duration_s = parse_seconds("duration", v); }},
      {"warmup", "Time", kTimed,
       "run this long before measuring, excluded from results (default: steady/hold 1s)",
       per_workload("0", "1s", "1s", ""),
       [](Options& o, const std::string& v) { o.warmup_s = parse_seconds("warmup", v); }},
      {"connect-timeout", "Time", kEvery, "give up on a connect after this long", always("5s"),
       [](Options& o, const std::string& v) {
         o.connect_timeout_s = positive_seconds("connect-timeout", v);
       }},
      {"timeout", "Time", kEvery,
       "give up on an echo not fully back this long after its first byte was sent", always("5s"),
       [](Options& o, const std::string& v) { o.timeout_s = positive_seconds("timeout", v); }},
      {"max-time", "Time", kEvery, "hard cap on the whole run, whatever happens", always("300s"),
       [](Options& o, const std::string& v) { o.max_time_s = positive_seconds("max-time", v); }},
      // Output.
      {"json", "Output", kEvery, "also write the results as JSON to this file (- = stdout)",
       always(""), [](Options& o, const std::string& v) { o.json_path = v; }},
      {"interval-json", "Output", kEvery,
       "write one JSON line per second (messages, errors, p50/p99 of that second) to this file",
       always(""), [](Options& o, const std::string& v) { o.interval_json_path = v; }},
      {"percentiles", "Output", kEvery, "latency percentiles to report", always("50,90,99,99.9"),
       [](Options& o, const std::string& v) { o.percentiles = parse_percentiles(v); }},
      {"saturated-at", "Output", kEvery,
       "a client thread busy this percentage of the window makes the run suspect", always("90"),
       [](Options& o, const std::string& v) {
         o.saturated_percent = parse_quantity("saturated-at", v);
         if (o.saturated_percent > 100) reject("saturated-at", v, "must be 0 to 100");
       }},
      {"server-pid", "Output", kEvery,
       "also report the CPU time of this local process and its descendants (the server's)",
       always(""),
       [](Options& o, const std::string& v) {
         o.server_pid = to_int(parse_count("server-pid", v, 1, INT_MAX));
       }},
  };
  return table;
}

constexpr std::array<std::string_view, 4> kGroups{"Target", "Load", "Time", "Output"};

// The flags as boost describes them: for one workload (its flags, with its defaults shown) or,
// without one, all of them with the defaults that every workload shares.
po::options_description describe(std::optional<Workload> workload, bool& quiet) {
  po::options_description all;
  for (std::string_view group : kGroups) {
    po::options_description section{std::string(group)};
    for (const Flag& flag : flags()) {
      if (flag.group != group || (workload && !flag.applies_to(*workload))) continue;
      auto* value = po::value<std::string>()->value_name("");
      std::string shown;
      if (workload) {
        shown = flag.default_for(*workload);
      } else {
        shown = flag.default_for(Workload::kSteady);
        for (Workload other : kAllWorkloads) {
          if (flag.applies_to(other) && flag.default_for(other) != shown) shown.clear();
        }
      }
      if (!shown.empty()) value->default_value(shown);
      section.add_options()(std::string(flag.name).c_str(), value, std::string(flag.help).c_str());
    }
    if (group == "Output") {
      section.add_options()("quiet,q", po::bool_switch(&quiet), "no progress line")(
          "help,h", "show this help (after a workload: that workload's flags and defaults)")(
          "version", "show the version");
    }
    all.add(section);
  }
  return all;
}

std::string_view example_for(Workload workload) {
  switch (workload) {
    case Workload::kChurn:
      return "echo-bench churn 7777 -w 50 -a 200 -e 5";
    case Workload::kSteady:
      return "echo-bench steady 127.0.0.1:7777 -c 1000 -d 30s --rate 50k\n"
             "  echo-bench steady 7777 -c 100 --find-rate p99=1ms -d 5s";
    case Workload::kHold:
      return "echo-bench hold 7777 -c 10k -i 500ms -d 1m";
    case Workload::kBurst:
      return "echo-bench burst 7777 -c 5000 --parts 3 -s 1k";
  }
  return "";
}

constexpr std::string_view kExitStatus =
    "Exit status: 0 every echo verified, the schedule kept, no errors; 1 errors or lost "
    "messages,\na signal, --max-time or a failed thread; 2 bad command line; 3 could not start; "
    "4 overloaded\n(open loop: nothing lost, but echoes were cut short or the schedule fell "
    "behind).\n";

void print_usage(std::ostream& out) {
  bool quiet = false;
  out << "Usage: echo-bench WORKLOAD [[HOST:]PORT] [options]\n"
         "       echo-bench WORKLOAD --help              that workload's flags and defaults\n"
         "       echo-bench merge A.json B.json ... [--json FILE] [--percentiles LIST]\n"
         "Measures any TCP echo server and verifies every byte it echoes.\n\n"
         "Workloads:\n"
         "  churn   workers connect, exchange --exchanges messages, close, --iterations times\n"
         "  steady  persistent connections, ping-pong or pipelined, optionally at a fixed --rate\n"
         "  hold    many mostly idle connections, one message each per --interval\n"
         "  burst   connect every socket, then each --parts part out to all and back\n\n"
         "Durations take a unit (500ms, 10s, 2m; plain numbers are seconds); counts and rates\n"
         "a multiplier (10k, 1.5M).\n"
      << describe(std::nullopt, quiet) << "\n"
      << kExitStatus;
}

void print_workload_usage(std::ostream& out, Workload workload) {
  bool quiet = false;
  out << "Usage: echo-bench " << workload_name(workload) << " [[HOST:]PORT] [options]\n"
      << describe(workload, quiet) << "\nExample:\n  " << example_for(workload) << "\n\n"
      << kExitStatus;
}

Workload parse_workload(const std::string& name) {
  for (Workload workload : kAllWorkloads) {
    if (workload_name(workload) == name) return workload;
  }
  throw std::invalid_argument("unknown workload '" + name +
                              "'; choose churn, steady, hold or burst (or merge)");
}

// "7777", "host:7777", "[::1]:7777".
void apply_target(Options& o, const std::string& text, bool port_flag_given, bool host_flag_given) {
  std::string host;
  std::string port = text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string::npos) {
      throw std::invalid_argument("target '" + text + "': write an IPv6 target as [ADDRESS]:PORT");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const auto colon = text.rfind(':'); colon != std::string::npos) {
    if (text.find(':') != colon) {
      throw std::invalid_argument("target '" + text + "': write an IPv6 target as [ADDRESS]:PORT");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port_flag_given)
    throw std::invalid_argument("give the port either as --port or as [HOST:]PORT");
  if (!host.empty() && host_flag_given) {
    throw std::invalid_argument("give the host either as --host or as HOST:PORT");
  }
  o.port = static_cast<std::uint16_t>(parse_count("port", port, 1, 65535));
  if (!host.empty()) o.host = host;
}

void check_combinations(const Options& o) {
  if ((o.workload == Workload::kSteady || o.workload == Workload::kHold) && o.duration_s <= 0) {
    reject("duration", format_seconds(o.duration_s), "must be more than 0");
  }
  if (o.json_path == "-" && o.interval_json_path == "-") {
    throw std::invalid_argument("--json - and --interval-json - cannot both have stdout");
  }
  if (o.find_rate && !o.interval_json_path.empty()) {
    throw std::invalid_argument("--find-rate makes many runs; --interval-json takes one");
  }
}

CommandLine parse_merge(int argc, const char* const* argv, std::ostream& out) {
  MergeRequest merge;
  std::string percentiles = "50,90,99,99.9";
  po::options_description flags("merge");
  // clang-format off
  flags.add_options()
      ("json", po::value(&merge.json_path), "write the merged report as JSON (- = stdout)")
      ("percentiles", po::value(&percentiles), "latency percentiles to report")
      ("help,h", "show this help");
  // clang-format on
  po::options_description everything;
  everything.add(flags).add_options()("input", po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add("input", -1);
  po::variables_map given;
  po::store(po::command_line_parser(argc - 1, argv + 1)
                .options(everything)
                .positional(positional)
                .style(po::command_line_style::unix_style)
                .run(),
            given);
  if (given.count("help")) {
    out << "Usage: echo-bench merge A.json B.json ... [options]\n"
           "Combines echo-bench JSON reports of one workload (several hosts, or several runs at\n"
           "once) into one: counts and rates add up, histograms merge bucket by bucket, so the\n"
           "percentiles are those of all the samples together (never averages).\n"
        << flags;
    return {std::nullopt, std::nullopt, 0};
  }
  po::notify(given);
  if (!given.count("input")) throw std::invalid_argument("merge: name the JSON reports to merge");
  merge.inputs = given["input"].as<std::vector<std::string>>();
  merge.percentiles = parse_percentiles(percentiles);
  return {std::nullopt, merge, 0};
}

CommandLine parse_run(int argc, const char* const* argv, std::ostream& out) {
  Options options;
  bool quiet = false;
  po::options_description everything;
  everything.add(describe(std::nullopt, quiet));
  everything.add_options()("workload", po::value<std::string>())("target",
                                                                 po::value<std::string>());
  po::positional_options_description positional;
  positional.add("workload", 1).add("target", 1);

  po::variables_map given;
  po::store(po::command_line_parser(argc, argv)
                .options(everything)
                .positional(positional)
                .style(po::command_line_style::unix_style)
                .run(),
            given);
  if (given.count("version")) {
    out << "echo-bench " << ECHO_BENCH_VERSION << "\n";
    return {};
  }
  if (!given.count("workload")) {
    if (given.count("help")) {
      print_usage(out);
      return {};
    }
    throw std::invalid_argument("name a workload: churn, steady, hold or burst (or merge)");
  }
  options.workload = parse_workload(given["workload"].as<std::string>());
  if (given.count("help")) {
    print_workload_usage(out, options.workload);
    return {};
  }
  po::notify(given);

  for (const Flag& flag : flags()) {
    const std::string name = flag.long_name();
    const auto& value = given[name];
    const bool typed = !value.empty() && !value.defaulted();
    if (typed && !flag.applies_to(options.workload)) {
      throw std::invalid_argument(
          fmt::format("--{} does not apply to {}", name, workload_name(options.workload)));
    }
    if (!flag.applies_to(options.workload)) continue;
    const std::string text = typed ? value.as<std::string>() : flag.default_for(options.workload);
    if (typed && text.empty() && name != "source-ips") reject(name, text, "needs a value");
    if (!text.empty()) flag.apply(options, text);
  }
  options.quiet = quiet;
  if (given.count("target")) {
    const auto typed = [&](const char* name) {
      return !given[name].empty() && !given[name].defaulted();
    };
    apply_target(options, given["target"].as<std::string>(), typed("port"), typed("host"));
  }
  check_combinations(options);
  return {options, std::nullopt, 0};
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

std::vector<double> parse_percentiles(std::string_view text) {
  std::vector<double> result;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, comma - start);
    start = comma + 1;
    const double percent = parse_quantity("percentiles", item);
    if (item.empty() || percent <= 0 || percent > 100 || item.find_first_of("kMG") != item.npos) {
      reject("percentiles", text, "each must be a number above 0 and at most 100");
    }
    if (!result.empty() && percent <= result.back()) {
      reject("percentiles", text, "must go upwards");
    }
    result.push_back(percent);
  }
  if (result.size() > 16) reject("percentiles", text, "at most 16");
  return result;
}

std::string percentile_label(double percent) {
  return fmt::format("p{:g}", percent);
}

std::string percentile_key(double percent) {
  std::string key = percentile_label(percent);
  std::replace(key.begin(), key.end(), '.', '_');
  return key;
}

int concurrent_sockets(const Options& options) {
  return options.workload == Workload::kChurn ? options.workers : options.connections;
}

CommandLine parse_command_line(int argc, const char* const* argv, std::ostream& out,
                               std::ostream& err) {
  try {
    for (int i = 1; i < argc; ++i) {
      if (const std::string complaint = echod::placeholder_complaint(argv[i]); !complaint.empty()) {
        throw std::invalid_argument(complaint);
      }
    }
    if (argc >= 2 && std::string_view(argv[1]) == "merge") return parse_merge(argc, argv, out);
    return parse_run(argc, argv, out);
  } catch (const std::exception& e) {
    err << "echo-bench: " << e.what() << "\n(see echo-bench --help)\n";
    return {std::nullopt, std::nullopt, 2};
  }
}

}  // namespace echod::bench
