// The seam between echod and its concurrency models.
//
// A model is a shared library that exports exactly one symbol, the data object
// `echod_plugin_descriptor` (see ECHOD_PLUGIN below). echod reads the descriptor's first two
// fields (ABI version, build signature) before calling any code in the plugin, then creates one
// IServerModel and calls run() once. Nothing may throw across this boundary: the trampolines
// ECHOD_PLUGIN generates turn exceptions into error text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <span>

#include <spdlog/logger.h>
#include <spdlog/version.h>
#include <boost/program_options.hpp>
#include <boost/version.hpp>

#include "echod/endpoint.hpp"
#include "echod/sdk_hash.hpp"  // generated at build time from these headers

namespace echod {

// Bumped whenever PluginDescriptor, ServerContext or IServerModel change layout or meaning.
inline constexpr std::uint32_t kAbiVersion = 2;

#define ECHOD_STRINGIFY_DETAIL(x) #x
#define ECHOD_STRINGIFY(x) ECHOD_STRINGIFY_DETAIL(x)

// Everything that must match between echod and a plugin for C++ objects (variables_map,
// shared_ptr<spdlog::logger>) to be passed safely: compiler, standard library, Boost, spdlog, fmt,
// and the SDK headers themselves (their hash: a layout change kAbiVersion missed still shows).
#define ECHOD_BUILD_SIGNATURE \
  "gcc-" ECHOD_STRINGIFY(__GNUC__) "." ECHOD_STRINGIFY(__GNUC_MINOR__) " libstdc++-" ECHOD_STRINGIFY( \
      _GLIBCXX_RELEASE) " cxx-" ECHOD_STRINGIFY(__cplusplus) " boost-" ECHOD_STRINGIFY(BOOST_VERSION) \
      " spdlog-" ECHOD_STRINGIFY(SPDLOG_VER_MAJOR) "." ECHOD_STRINGIFY( \
          SPDLOG_VER_MINOR) "." ECHOD_STRINGIFY(SPDLOG_VER_PATCH) " fmt-" ECHOD_STRINGIFY(FMT_VERSION) \
      " sdk-" ECHOD_SDK_HASH

// What a model declares about itself. Tests and tools use these instead of special-casing names.
enum Capability : std::uint32_t {
  kCapNone = 0,
  kCapConcurrent = 1u << 0,     // serves many clients at once (iterative does not)
  kCapForks = 1u << 1,          // runs connections in child processes
  kCapMultiThreaded = 1u << 2,  // runs connections on more than one thread
  // One listener per worker: the model declares the int key "<name>.workers" and core opens
  // that many SO_REUSEPORT listeners on the address, in order, so listen_fds[i] is worker i's
  // and is the i-th socket of the kernel's reuseport group. Added in ABI 2 without a bump (see
  // docs/architecture.md, "The seam").
  kCapReusePort = 1u << 3,
  // Serves its connections from event loops, not a thread or process each, with no ceiling of
  // its own below the descriptor limit (select's FD_SETSIZE is one): it can hold 10,000 mostly
  // idle connections at once (the soak suite checks exactly that).
  kCapEventDriven = 1u << 4,
};

// Everything a model needs while it runs. Owned by echod; outlives run().
//
// The stop has two steps. drain_fd becomes readable on the first SIGINT/SIGTERM: core has shut
// the listeners down (accept() fails with EINVAL: Acceptor::Status::kClosed), so stop accepting,
// keep serving the open connections, and return from run() once none is left. stop_fd becomes
// readable when the drain's deadline passes, on a second signal, or at once when no drain is
// configured: close every connection (through a Finisher, which at the drain's deadline gives
// each a lingering close) and return. drain_fd is readable whenever stop_fd is.
struct ServerContext {
  // Bound, listening, nonblocking, close-on-exec sockets. Owned by echod: do not close them.
  // One per address; with kCapReusePort, "<name>.workers" of them on the one address.
  std::span<const int> listen_fds;
  // The model's logger. Use it, never spdlog's global registry (it is not shared across the
  // .so boundary). Per-connection events belong at debug level.
  std::shared_ptr<spdlog::logger> log;
  // Core keys ("port", "high-water", ...) and every model's keys as "<model>.<key>".
  const boost::program_options::variables_map& options;
  // Becomes readable, and stays readable, once the model must stop (see above). Poll it
  // beside your sockets; never read from it. Inherited by forked children.
  int stop_fd;
  // Per-connection bytes received but not yet echoed above which the model stops reading.
  std::size_t high_water;
  // Becomes readable, and stays readable, once a drain begins (see above). Never read from it.
  int drain_fd;
  // Caps, idle timeout, drain phase, counters. Acceptor admits through it; shared with forked
  // children (its state is in shared memory).
  Endpoint* endpoint;
};

// One concurrency model. Created once per process by echod, run once, destroyed before the
// plugin is unloaded. Owned by echod's main thread.
class IServerModel {
 public:
  IServerModel() = default;
  IServerModel(const IServerModel&) = delete;
  IServerModel& operator=(const IServerModel&) = delete;
  virtual ~IServerModel() = default;

  // Accept and echo on ctx.listen_fds until ctx.stop_fd becomes readable, then close every
  // connection, join every thread and reap every child before returning. Returns 0 on a clean
  // stop, otherwise an errno value describing why serving failed (after logging it).
  virtual int run(const ServerContext& ctx) noexcept = 0;
};

// Error text filled in by a failing trampoline.
struct PluginError {
  char message[512] = {};
  void set(const char* text) noexcept { std::snprintf(message, sizeof message, "%s", text); }
};

// The plugin's single exported object. The first two fields are frozen for all ABI versions so
// any echod can read them and explain a mismatch.
struct PluginDescriptor {
  std::uint32_t abi_version;
  const char* build_signature;
  const char* name;     // as used in --model and as the config section name
  const char* summary;  // one line for --list-models
  std::uint32_t capabilities;
  // Adds the model's options, each named "<name>.<key>", with their defaults.
  bool (*declare_options)(boost::program_options::options_description& options,
                          PluginError& error) noexcept;
  // Validates the model's options and creates the model; nullptr and error text on failure.
  IServerModel* (*create)(const boost::program_options::variables_map& options,
                          PluginError& error) noexcept;
  void (*destroy)(IServerModel* model) noexcept;
  // Whether the model can run on this machine (e.g. the kernel allows io_uring): false with
  // the reason in `error`. --list-models shows the reason; --model=NAME exits 1 with it.
  bool (*probe)(PluginError& error) noexcept;
};

namespace detail {
template <typename Fn>
bool guarded(PluginError& error, Fn&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    error.set(e.what());
  } catch (...) {
    error.set("unknown exception");
  }
  return false;
}

template <typename ModelClass>
bool probe(PluginError& error) noexcept {
  if constexpr (requires { ModelClass::unavailable_reason(); }) {
    bool available = false;
    const bool ran = guarded(error, [&] {
      const auto reason = ModelClass::unavailable_reason();
      available = reason.empty();
      if (!available) error.set(reason.c_str());
    });
    return ran && available;
  } else {
    return true;
  }
}
}  // namespace detail

}  // namespace echod

#define ECHOD_PLUGIN_SYMBOL "echod_plugin_descriptor"

// Exports the descriptor for a model class. ModelClass must provide
//   static void declare_options(boost::program_options::options_description&);
//   explicit ModelClass(const boost::program_options::variables_map&);  // throws on bad values
// and implement IServerModel::run. It may provide
//   static std::string unavailable_reason();  // empty when the model can run here
#define ECHOD_PLUGIN(ModelClass, model_name, model_summary, model_capabilities)           \
  namespace {                                                                             \
  bool echod_declare_options(boost::program_options::options_description& options,        \
                             echod::PluginError& error) noexcept {                        \
    return echod::detail::guarded(error, [&] { ModelClass::declare_options(options); });  \
  }                                                                                       \
  echod::IServerModel* echod_create(const boost::program_options::variables_map& options, \
                                    echod::PluginError& error) noexcept {                 \
    echod::IServerModel* model = nullptr;                                                 \
    echod::detail::guarded(error, [&] { model = new ModelClass(options); });              \
    return model;                                                                         \
  }                                                                                       \
  void echod_destroy(echod::IServerModel* model) noexcept {                               \
    delete model;                                                                         \
  }                                                                                       \
  bool echod_probe(echod::PluginError& error) noexcept {                                  \
    return echod::detail::probe<ModelClass>(error);                                       \
  }                                                                                       \
  }                                                                                       \
  extern "C" __attribute__((visibility("default")))                                       \
  const echod::PluginDescriptor echod_plugin_descriptor{                                  \
      echod::kAbiVersion, ECHOD_BUILD_SIGNATURE, model_name,                              \
      model_summary,      (model_capabilities),  &echod_declare_options,                  \
      &echod_create,      &echod_destroy,        &echod_probe};
