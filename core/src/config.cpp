#include "config.hpp"

#include <sys/socket.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <spdlog/common.h>

#include "echod/option_words.hpp"
#include "echod/options.hpp"

namespace echod {
namespace {

// The line of `path` that sets `key` ("high-water", or "epoll.max-events" for a key in the
// [epoll] section), for error messages; 0 if not found.
int line_of_key(const std::string& path, const std::string& key) {
  std::ifstream file(path);
  std::string line, section;
  for (int number = 1; std::getline(file, line); ++number) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#' || line[first] == ';') continue;
    if (line[first] == '[') {
      section = line.substr(first + 1, line.find(']') - first - 1);
      continue;
    }
    const auto equals = line.find('=');
    if (equals == std::string::npos) continue;
    std::string name = line.substr(first, equals - first);
    name.erase(name.find_last_not_of(" \t") + 1);
    if ((section.empty() ? name : section + "." + name) == key) return number;
  }
  return 0;
}

// Program_options says "unrecognised option '--x'"; say where it came from and what it is.
[[noreturn]] void rethrow_as_usage_error(const po::error& e, std::string origin,
                                         const std::string& path = {}) {
  std::string key;
  if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) {
    key = named->get_option_name();
    while (!key.empty() && key.front() == '-')
      key.erase(0, 1);
    key = key.substr(0, key.find('='));
  }
  if (!path.empty() && !key.empty()) {
    if (const int line = line_of_key(path, key); line > 0) origin += ":" + std::to_string(line);
  }
  if (dynamic_cast<const po::unknown_option*>(&e) != nullptr) {
    std::string hint = "; see echod --help";
    if (auto dot = key.find('.'); dot != std::string::npos) {
      hint += " --model=" + key.substr(0, dot) + " for that model's keys";
    }
    throw UsageError(origin + ": unknown option '" + key + "'" + hint);
  }
  throw UsageError(origin + ": " + e.what());
}

std::vector<AddressRange> parse_address_ranges(const std::string& text) {
  std::vector<AddressRange> ranges;
  std::string item;
  std::istringstream words(text);
  while (std::getline(words, item, ' ')) {
    std::istringstream parts(item);
    std::string part;
    while (std::getline(parts, part, ',')) {
      if (part.empty()) continue;
      AddressRange range;
      if (!AddressRange::parse(part, range)) {
        throw UsageError("per-ip-exempt: '" + part +
                         "' is not an address or prefix (e.g. 127.0.0.0/8 or ::1)");
      }
      ranges.push_back(range);
    }
  }
  return ranges;
}

}  // namespace

po::options_description core_options() {
  const EndpointLimits limits;
  // clang-format off
  po::options_description general("General");
  general.add_options()
      ("help,h", po::bool_switch(), "show this help (with --model: that model's options too)")
      ("version", po::bool_switch(), "print echod's version and plugin ABI")
      ("list-models", po::bool_switch(), "list the models found, one per line, and exit")
      ("describe-model", po::bool_switch(),
       "print the selected model's name, summary, capabilities and file, and exit")
      ("check-config,t", po::bool_switch(),
       "check the configuration (file, command line, the model's own keys) and exit: "
       "prints 'configuration ok', or the error with exit status 2")
      ("config,c", po::value<std::string>(), "read settings from this INI file")
      ("plugin-dir", po::value<std::vector<std::string>>()->composing(),
       "search this directory for model plugins (repeatable; searched before the defaults)")
      ("plugin", po::value<std::vector<std::string>>()->composing(),
       "load this model plugin file (repeatable); a file that fails to load is an error");
  po::options_description server("Server");
  server.add_options()
      ("model,m", po::value<std::string>()->default_value("epoll"), "concurrency model to run")
      ("bind,b", po::value<std::string>()->default_value("127.0.0.1"),
       "address to listen on (IPv4 or IPv6, e.g. 0.0.0.0 or ::)")
      ("port,p", bounded(0, 65535)->default_value(7777), "TCP port (0-65535); 0 picks a free one")
      ("metrics", po::value<std::string>()->default_value(""),
       "serve Prometheus metrics over HTTP on ADDR:PORT (e.g. 127.0.0.1:9100; off by default)")
      ("backlog", bounded(1, 65535)->default_value(SOMAXCONN),
       "listen backlog (1-65535; the kernel caps it at net.core.somaxconn)")
      ("high-water", bounded<std::size_t>(1024, std::size_t{1} << 30)->default_value(std::size_t{1} << 20),
       "bytes received but not yet echoed on one connection above which the server stops "
       "reading it (backpressure; 1024-1073741824)")
      ("log-level", po::value<std::string>()->default_value("info"),
       "trace, debug (per-connection events), info, warn, error, critical or off");
  po::options_description endpoint("Endpoint");
  endpoint.add_options()
      ("max-connections", bounded<std::size_t>(1, 1u << 20)->default_value(limits.max_connections),
       "connections open at once, whole server (1-1048576); past it a new connection is "
       "closed at once")
      ("max-connections-per-ip", bounded<std::size_t>(0, 1u << 20)->default_value(limits.max_per_ip),
       "connections open at once from one client address (0 = no per-address cap)")
      ("per-ip-exempt", po::value<std::string>()->default_value("127.0.0.0/8 ::1"),
       "addresses or prefixes the per-address cap does not count, space- or comma-separated "
       "(\"\" = none)")
      ("idle-timeout", bounded(0.0, 86400.0)->default_value(300.0, "300"),
       "seconds after which a connection that sent nothing and has nothing left to echo is "
       "closed (fractions allowed; 0 = never)")
      ("drain-timeout", bounded(0.0, 86400.0)->default_value(10.0, "10"),
       "seconds the first SIGINT/SIGTERM lets open connections finish (listeners close at "
       "once; a second signal stops at once; 0 = no drain)")
      ("stop-timeout", bounded(0.1, 3600.0)->default_value(5.0, "5"),
       "seconds a model has to stop after the drain (or the stop) before echod exits with "
       "status 1")
      ("tcp-keepalive", bounded_or_off(1, 86400)->default_value(0),
       "TCP keepalive: whole seconds idle before the first probe, 3 probes (0 = off)")
      ("tcp-user-timeout", bounded_or_off(0.001, 86400.0)->default_value(0.0, "0"),
       "TCP_USER_TIMEOUT: seconds sent data may stay unacknowledged before the connection is "
       "dropped (0 = off; else at least 0.001, rounded up to whole milliseconds)");
  // clang-format on
  po::options_description all;
  all.add(general).add(server).add(endpoint);
  return all;
}

po::variables_map parse_settings(int argc, const char* const argv[],
                                 const po::options_description& options, bool strict) {
  // "--key=" (an empty value, e.g. --per-ip-exempt=) is "--key" "" to Program_options, which
  // otherwise refuses it.
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (const std::string complaint = placeholder_complaint(word); !complaint.empty()) {
      throw UsageError("command line: " + complaint);
    }
    if (word.size() > 3 && word.rfind("--", 0) == 0 && word.back() == '=' &&
        word.find('=') == word.size() - 1) {
      words.push_back(word.substr(0, word.size() - 1));
      words.emplace_back();
    } else {
      words.push_back(word);
    }
  }
  po::variables_map settings;
  try {
    auto parser = po::command_line_parser(words).options(options);
    if (!strict) parser.allow_unregistered();
    // Stored first, so the command line wins over the file.
    po::store(parser.run(), settings);
  } catch (const po::error& e) {
    rethrow_as_usage_error(e, "command line");
  }
  if (settings.count("config")) {
    const auto path = settings["config"].as<std::string>();
    std::ifstream file(path);
    if (!file) throw UsageError("cannot read config file '" + path + "'");
    std::stringstream text;
    text << file.rdbuf();
    std::istringstream lines(text.str());
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
      if (const std::string complaint = placeholder_complaint(line); !complaint.empty()) {
        throw UsageError(path + ":" + std::to_string(number) + ": " + complaint);
      }
    }
    text.seekg(0);
    try {
      po::store(po::parse_config_file(text, options, !strict), settings);
    } catch (const po::error& e) {
      rethrow_as_usage_error(e, path, path);
    }
  }
  try {
    po::notify(settings);
  } catch (const po::error& e) {
    rethrow_as_usage_error(e, "settings");
  }
  return settings;
}

CoreSettings core_settings(const po::variables_map& settings) {
  CoreSettings core;
  core.model = settings["model"].as<std::string>();
  core.bind = settings["bind"].as<std::string>();
  core.port = static_cast<std::uint16_t>(settings["port"].as<int>());
  core.metrics = settings["metrics"].as<std::string>();
  core.address_given = !settings["bind"].defaulted() || !settings["port"].defaulted();
  core.backlog = settings["backlog"].as<int>();
  core.high_water = settings["high-water"].as<std::size_t>();
  core.log_level = settings["log-level"].as<std::string>();
  if (auto level = spdlog::level::from_str(core.log_level);
      level == spdlog::level::off && core.log_level != "off") {
    throw UsageError("unknown log-level '" + core.log_level +
                     "' (use trace, debug, info, warn, error, critical or off)");
  }
  core.stop_timeout = seconds_option(settings, "stop-timeout");
  core.drain_timeout = seconds_option(settings, "drain-timeout");
  core.limits.max_connections = settings["max-connections"].as<std::size_t>();
  core.limits.max_per_ip = settings["max-connections-per-ip"].as<std::size_t>();
  core.limits.per_ip_exempt = parse_address_ranges(settings["per-ip-exempt"].as<std::string>());
  core.limits.idle_timeout = seconds_option(settings, "idle-timeout");
  core.limits.tcp_keepalive = std::chrono::seconds(settings["tcp-keepalive"].as<int>());
  // Rounded up, so that a tiny timeout never turns into 0, which would mean off.
  core.limits.tcp_user_timeout = std::chrono::milliseconds(
      static_cast<long long>(std::ceil(settings["tcp-user-timeout"].as<double>() * 1000.0)));
  // The lingering close at the drain's deadline stays well inside the stop's hard bound.
  core.limits.linger = std::min(std::chrono::milliseconds(2000), core.stop_timeout / 2);
  if (settings.count("plugin-dir")) {
    core.plugin_dirs = settings["plugin-dir"].as<std::vector<std::string>>();
  }
  if (settings.count("plugin"))
    core.plugin_files = settings["plugin"].as<std::vector<std::string>>();
  core.help = settings["help"].as<bool>();
  core.list_models = settings["list-models"].as<bool>();
  core.describe_model = settings["describe-model"].as<bool>();
  core.version = settings["version"].as<bool>();
  core.check_config = settings["check-config"].as<bool>();
  return core;
}

}  // namespace echod
