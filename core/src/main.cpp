// echod: parse settings -> load model plugins -> listen -> run the model -> exit status.
//
// Exit status: 0 after a clean stop (SIGINT/SIGTERM), 1 when serving fails (port in use, model
// error, stop timeout), 2 for a bad command line, configuration or plugin.
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <optional>
#include <system_error>
#include <thread>

#include "config.hpp"
#include "echod/endpoint.hpp"
#include "echod/server_model.hpp"
#include "listener.hpp"
#include "logging.hpp"
#include "metrics.hpp"
#include "plugin_loader.hpp"
#include "signals.hpp"
#include "systemd.hpp"

#ifndef ECHOD_VERSION
#define ECHOD_VERSION "0.0.0"
#endif

namespace echod {
namespace {

void report_problems(const PluginRegistry& registry) {
  for (const auto& problem : registry.problems()) {
    std::cerr << "echod: skipped plugin " << problem.path.string() << ": " << problem.reason
              << "\n";
  }
}

PluginRegistry load_plugins(const CoreSettings& core) {
  PluginRegistry registry;
  for (const auto& file : core.plugin_files) {
    if (!registry.load_file(file)) {
      const auto& problem = registry.problems().back();
      throw UsageError("cannot use plugin " + problem.path.string() + ": " + problem.reason);
    }
  }
  for (const auto& dir : core.plugin_dirs)
    registry.load_directory(dir, /*must_exist=*/true);
  for (const auto& dir : default_plugin_dirs())
    registry.load_directory(dir, false);
  return registry;
}

// The core keys plus every loaded model's keys, so one config file may tune several models.
po::options_description all_options(const PluginRegistry& registry) {
  po::options_description all = core_options();
  for (const auto& plugin : registry.plugins()) {
    po::options_description model_options(std::string("Model '") + plugin.descriptor->name + "'");
    PluginError error;
    if (!plugin.descriptor->declare_options(model_options, error)) {
      throw UsageError("model " + std::string(plugin.name()) + " (" + plugin.path.string() +
                       "): cannot declare its options: " + error.message);
    }
    all.add(model_options);
  }
  return all;
}

// Serving runs one model's code only, so the other libraries are unmapped before it starts:
// code that is not mapped cannot run, and a forking model copies every mapping of the address
// space on each fork (ten unused models nearly double them; fork's accept rate under load
// showed it). Their settings go first: each value's holder and semantic are their plugin's code.
void unload_other_models(PluginRegistry& registry, po::variables_map& settings,
                         const LoadedPlugin& chosen) {
  const std::string own_prefix = std::string(chosen.name()) + ".";
  for (auto entry = settings.begin(); entry != settings.end();) {
    const std::string& key = entry->first;
    const bool other_model =
        key.find('.') != std::string::npos && key.compare(0, own_prefix.size(), own_prefix) != 0;
    entry = other_model ? settings.erase(entry) : std::next(entry);
  }
  registry = PluginRegistry{};  // `chosen` holds its own library
}

// The --describe-model lines, which the conformance suite and scripts parse.
void print_description(const LoadedPlugin& plugin) {
  const PluginDescriptor& d = *plugin.descriptor;
  std::printf("name: %s\nsummary: %s\ncapabilities: %s\nfile: %s\n", d.name, d.summary,
              capability_names(d.capabilities).c_str(), plugin.path.c_str());
}

// "name  summary" per model; `detailed` (--list-models --describe-model) prints instead, per
// model, its description plus the ABI version and build signature it was checked against.
void print_model_list(const PluginRegistry& registry, bool detailed) {
  std::vector<const LoadedPlugin*> sorted;
  for (const auto& plugin : registry.plugins())
    sorted.push_back(&plugin);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name() < b->name(); });
  for (const auto* plugin : sorted) {
    const PluginDescriptor& d = *plugin->descriptor;
    PluginError reason;
    const bool available = d.probe == nullptr || d.probe(reason);
    if (!detailed) {
      std::printf("%-12s %s%s%s\n", d.name, d.summary, available ? "" : " [unavailable: ",
                  available ? "" : (std::string(reason.message) + "]").c_str());
      continue;
    }
    if (plugin != sorted.front()) std::printf("\n");
    print_description(*plugin);
    std::printf("abi: %u\nbuild: %s\n", d.abi_version, d.build_signature);
  }
}

// Reports the drain as it happens: its start (with how many connections it waits for) and its
// deadline; and, under systemd (NOTIFY_SOCKET), STOPPING=1 at the first signal and a STATUS=
// line with the open connections every kStatusInterval while it changes (not per connection).
// A thread of its own, so that no model has to; it blocks every signal, so signals (SIGCHLD
// for the forking models' signalfd above all) go to the model's threads as before.
// Owned by serve(); joined before the summary.
class DrainReporter {
 public:
  static constexpr int kStatusIntervalMs = 2000;

  DrainReporter(const CoreSettings& core, const StopDescriptors& stop, Endpoint& endpoint,
                spdlog::logger& log)
      : done_(::eventfd(0, EFD_CLOEXEC)), endpoint_(endpoint) {
    if (!done_) throw std::system_error(errno, std::generic_category(), "eventfd");
    sigset_t all, previous;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &previous);
    thread_ = std::thread([&, drain = core.drain_timeout, stop] {
      if (!wait_for(stop.drain_fd)) return;
      notify_stopping();
      if (endpoint.phase() == Phase::kDraining) {
        log.info(
            "draining: listeners closed; serving {} open connections for up to {} s "
            "(signal again to stop now)",
            endpoint.counts().open, std::chrono::duration<double>(drain).count());
      }
      if (!wait_for(stop.stop_fd)) return;
      if (endpoint.phase() == Phase::kFinishing) {
        log.info("drain timeout: finishing {} connections", step_counts().open_at_deadline);
      }
    });
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }
  DrainReporter(const DrainReporter&) = delete;
  DrainReporter& operator=(const DrainReporter&) = delete;
  ~DrainReporter() {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(done_.get(), &one, sizeof one);
    thread_.join();
    // A drain with no open connections can end before the thread saw the signal.
    if (endpoint_.draining()) notify_stopping();
  }

 private:
  // True once `fd` is readable; false once the server is done. Under systemd, wakes every
  // kStatusIntervalMs to update STATUS= when the open count changed.
  bool wait_for(int fd) {
    pollfd pfds[2] = {{fd, POLLIN, 0}, {done_.get(), POLLIN, 0}};
    const int timeout = service_manager_listening() ? kStatusIntervalMs : -1;
    for (;;) {
      report_status();
      const int ready = ::poll(pfds, 2, timeout);
      if (ready < 0 && errno != EINTR) return false;
      if (ready > 0) break;
    }
    return pfds[1].revents == 0;
  }

  void notify_stopping() {
    if (!stopping_sent_.exchange(true)) notify_service_manager("STOPPING=1");
  }

  void report_status() {
    if (!service_manager_listening()) return;
    const std::uint32_t open = endpoint_.open_cell()->load(std::memory_order_relaxed);
    if (open == last_status_open_) return;
    last_status_open_ = open;
    notify_service_manager("STATUS=" + std::to_string(open) + " open connections");
  }

  Fd done_;
  Endpoint& endpoint_;
  std::uint32_t last_status_open_ = UINT32_MAX;
  std::atomic<bool> stopping_sent_{false};
  std::thread thread_;
};

// The model gets a descriptor table apart from core's own threads (the drain reporter, the
// metrics exposer), which touch no connection. While a table is shared by several threads the
// kernel takes and drops a reference on the file at every descriptor lookup (fdget's slow
// path): two atomic writes to the socket's struct file per recv, send and epoll_wait, a cache
// miss apiece with many connections. With a table of its own, a single-threaded model looks up
// descriptors as a single-threaded C server does; threads a model starts share its table as
// before. What core opened so far (listeners, stop and drain descriptors) is in both tables,
// and core's threads hold their copies until they are joined. Where unshare is refused (a
// seccomp filter), the table stays shared, which costs only that. Not under ThreadSanitizer: it
// takes a descriptor number for one file in every thread, so two tables that reuse a number for
// different files look to it like a race (socket() in one thread, eventfd() in another).
void give_model_its_own_descriptor_table(spdlog::logger& log) {
#if defined(__SANITIZE_THREAD__)
  log.debug("built with ThreadSanitizer: the descriptor table stays shared");
#else
  if (::unshare(CLONE_FILES) != 0) {
    log.debug("unshare(CLONE_FILES): {}; the descriptor table stays shared", std::strerror(errno));
  }
#endif
}

// Core's listeners: the one systemd passed (socket activation), else one bound on
// --bind/--port, or for a kCapReusePort model one per worker ("<model>.workers", validated by
// the model when it was created). With a passed socket, --bind/--port are not used; if set, a
// log line says so (a config file may be shared between a socket-activated unit and a plain
// one). A reuseport model needs a group of its own and refuses a passed socket.
std::vector<Listener> open_listeners(const CoreSettings& core, const po::variables_map& settings,
                                     const PluginDescriptor& model, spdlog::logger& log) {
  const bool reuse_port = (model.capabilities & kCapReusePort) != 0;
  if (std::optional<Listener> passed = inherited_listener()) {
    if (reuse_port) {
      throw std::runtime_error("model " + std::string(model.name) +
                               " opens one SO_REUSEPORT listener per worker and cannot serve "
                               "the single socket systemd passed");
    }
    if (core.address_given) {
      log.info("serving the socket systemd passed ({}); --bind/--port ({}:{}) not used",
               passed->address, core.bind, core.port);
    }
    std::vector<Listener> one;
    one.push_back(std::move(*passed));
    return one;
  }
  if (!reuse_port) {
    std::vector<Listener> one;
    one.push_back(open_listener(core.bind, core.port, core.backlog));
    return one;
  }
  const std::string key = std::string(model.name) + ".workers";
  const auto found = settings.find(key);
  if (found == settings.end() || found->second.value().type() != typeid(int) ||
      found->second.as<int>() < 1) {
    throw std::runtime_error("model " + std::string(model.name) +
                             " declares reuseport but no positive int option " + key);
  }
  return open_reuseport_listeners(core.bind, core.port, core.backlog,
                                  static_cast<std::size_t>(found->second.as<int>()));
}

int serve(const CoreSettings& core, const po::variables_map& settings, const LoadedPlugin& plugin) {
  auto log = make_logger("echod", core.log_level);
  if (PluginError reason;
      plugin.descriptor->probe != nullptr && !plugin.descriptor->probe(reason)) {
    log->error("model {} cannot run here: {}", core.model, reason.message);
    return 1;
  }

  PluginError error;
  IServerModel* created = plugin.descriptor->create(settings, error);
  if (created == nullptr) {
    throw UsageError("model " + core.model + ": " + error.message);
  }
  ModelInstance instance(plugin, created);
  Endpoint endpoint(core.limits, log->clone(core.model));
  std::optional<MetricsServer> metrics;  // read the endpoint at each scrape; destroyed first
  if (!core.metrics.empty()) {
    metrics.emplace(core.metrics, endpoint, core.model, ECHOD_VERSION);
    log->info("metrics on http://{}/metrics (port {})", core.metrics, metrics->address());
  }

  // Signals before listening, so a stop that arrives right after the log line is not lost.
  const StopDescriptors stop = install_stop_signals(
      {core.drain_timeout, core.stop_timeout, endpoint.phase_cell(), endpoint.open_cell()});
  const std::vector<Listener> listeners = open_listeners(core, settings, *plugin.descriptor, *log);
  std::vector<int> listen_fds;
  for (const Listener& listener : listeners)
    listen_fds.push_back(listener.fd.get());
  shut_down_on_drain(listen_fds);
  if (endpoint.draining()) {  // a signal came first
    for (int fd : listen_fds)
      ::shutdown(fd, SHUT_RDWR);
  }
  ServerContext context{listen_fds,      log->clone(core.model), settings, stop.stop_fd,
                        core.high_water, stop.drain_fd,          &endpoint};
  int result;
  {
    DrainReporter reporter(core, stop, endpoint, *log);  // before the line tests wait for
    if (listeners.size() > 1) log->info("{} SO_REUSEPORT listeners", listeners.size());
    log->info("listening on {} model={}", listeners.front().address, core.model);
    notify_service_manager("READY=1\nSTATUS=serving on " + listeners.front().address);
    give_model_its_own_descriptor_table(*log);
    result = instance.model().run(context);
  }
  if (result == 0 && endpoint.phase() == Phase::kDraining) log->info("drain complete");
  log->info("{}", endpoint.summary());
  if (result != 0) {
    log->error("model {} stopped with error: {}", core.model, std::strerror(result));
    return 1;
  }
  log->info("stopped cleanly");
  return 0;
}

int run_echod(int argc, const char* const argv[]) {
  // Pass 1: core keys only, to learn the model, the plugin directories and the config file.
  const po::options_description core_only = core_options();
  CoreSettings core = core_settings(parse_settings(argc, argv, core_only, /*strict=*/false));
  if (core.version) {
    std::printf("echod %s (model ABI %u, %s)\n", ECHOD_VERSION, kAbiVersion, ECHOD_BUILD_SIGNATURE);
    return 0;
  }

  PluginRegistry registry = load_plugins(core);
  LoadedPlugin chosen;  // declared before the settings: they hold values made by its code
  po::variables_map settings;
  {
    const po::options_description all = all_options(registry);
    if (core.list_models) {
      report_problems(registry);
      print_model_list(registry, core.describe_model);
      return 0;
    }
    // Pass 2: everything, strictly: unknown keys and bad values are errors now.
    settings = parse_settings(argc, argv, all, /*strict=*/true);
  }
  core = core_settings(settings);

  const LoadedPlugin* plugin = registry.find(core.model);
  if (core.help) {
    std::cout << "Usage: echod [--model NAME] [--port N] [--config FILE] [options]\n\n"
              << core_only << "\n";
    if (plugin != nullptr) {
      PluginError error;
      po::options_description own(std::string("Model '") + plugin->descriptor->name + "'");
      plugin->descriptor->declare_options(own, error);
      std::cout << plugin->descriptor->name << ": " << plugin->descriptor->summary << "\n";
      if (own.options().empty()) {
        std::cout << "  (no options of its own)\n";
      } else {
        std::cout << own << "\n";
      }
    }
    std::cout << "Models: " << registry.names() << "\n";
    return 0;
  }
  if (plugin == nullptr) {
    report_problems(registry);
    throw UsageError("unknown model '" + core.model + "'; available models: " + registry.names());
  }
  report_problems(registry);
  if (core.describe_model) {
    print_description(*plugin);
    return 0;
  }
  if (core.check_config) {  // everything serve() checks before it listens
    PluginError error;
    IServerModel* created = plugin->descriptor->create(settings, error);
    if (created == nullptr) throw UsageError("model " + core.model + ": " + error.message);
    ModelInstance instance(*plugin, created);
    std::printf("configuration ok\n");
    return 0;
  }
  chosen = *plugin;
  unload_other_models(registry, settings, chosen);
  return serve(core, settings, chosen);
}

}  // namespace
}  // namespace echod

int main(int argc, char* argv[]) {
  try {
    return echod::run_echod(argc, argv);
  } catch (const echod::UsageError& e) {
    std::cerr << "echod: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "echod: " << e.what() << "\n";
    return 1;
  }
}
