#include "config.hpp"

#include <sys/socket.h>

#include <fstream>

#include <spdlog/common.h>

namespace echod {
namespace {

// Program_options says "unrecognised option '--x'"; say where it came from and what it is.
[[noreturn]] void rethrow_as_usage_error(const po::error& e, const std::string& origin) {
  if (const auto* unknown = dynamic_cast<const po::unknown_option*>(&e)) {
    std::string key = unknown->get_option_name();
    while (!key.empty() && key.front() == '-')
      key.erase(0, 1);
    key = key.substr(0, key.find('='));
    std::string hint = "; see echod --help";
    if (auto dot = key.find('.'); dot != std::string::npos) {
      hint += " --model=" + key.substr(0, dot) + " for that model's keys";
    }
    throw UsageError(origin + ": unknown option '" + key + "'" + hint);
  }
  throw UsageError(origin + ": " + e.what());
}

}  // namespace

po::options_description core_options() {
  // clang-format off
  po::options_description general("General");
  general.add_options()
      ("help,h", po::bool_switch(), "show this help (with --model: that model's options too)")
      ("version", po::bool_switch(), "print echod's version and plugin ABI")
      ("list-models", po::bool_switch(), "list the models found, one per line, and exit")
      ("describe-model", po::bool_switch(),
       "print the selected model's name, summary, capabilities and file, and exit")
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
      ("port,p", po::value<int>()->default_value(7777), "TCP port; 0 picks a free one")
      ("backlog", po::value<int>()->default_value(SOMAXCONN),
       "listen backlog (the kernel caps it at net.core.somaxconn)")
      ("high-water", po::value<std::size_t>()->default_value(std::size_t{1} << 20),
       "bytes received but not yet echoed on one connection above which the server stops "
       "reading it (backpressure)")
      ("log-level", po::value<std::string>()->default_value("info"),
       "trace, debug (per-connection events), info, warn, error, critical or off")
      ("stop-timeout", po::value<unsigned>()->default_value(5),
       "seconds a model has to stop after SIGINT/SIGTERM before echod exits with status 1");
  // clang-format on
  po::options_description all;
  all.add(general).add(server);
  return all;
}

po::variables_map parse_settings(int argc, const char* const argv[],
                                 const po::options_description& options, bool strict) {
  po::variables_map settings;
  try {
    auto parser = po::command_line_parser(argc, argv).options(options);
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
    try {
      po::store(po::parse_config_file(file, options, !strict), settings);
    } catch (const po::error& e) {
      rethrow_as_usage_error(e, path);
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
  const int port = settings["port"].as<int>();
  if (port < 0 || port > 65535) {
    throw UsageError("port must be between 0 and 65535, not " + std::to_string(port));
  }
  core.port = static_cast<std::uint16_t>(port);
  core.backlog = settings["backlog"].as<int>();
  if (core.backlog < 1) throw UsageError("backlog must be at least 1");
  core.high_water = settings["high-water"].as<std::size_t>();
  if (core.high_water < 1024) throw UsageError("high-water must be at least 1024 bytes");
  core.log_level = settings["log-level"].as<std::string>();
  if (auto level = spdlog::level::from_str(core.log_level);
      level == spdlog::level::off && core.log_level != "off") {
    throw UsageError("unknown log-level '" + core.log_level +
                     "' (use trace, debug, info, warn, error, critical or off)");
  }
  core.stop_timeout_seconds = settings["stop-timeout"].as<unsigned>();
  if (settings.count("plugin-dir")) {
    core.plugin_dirs = settings["plugin-dir"].as<std::vector<std::string>>();
  }
  if (settings.count("plugin"))
    core.plugin_files = settings["plugin"].as<std::vector<std::string>>();
  core.help = settings["help"].as<bool>();
  core.list_models = settings["list-models"].as<bool>();
  core.describe_model = settings["describe-model"].as<bool>();
  core.version = settings["version"].as<bool>();
  return core;
}

}  // namespace echod
