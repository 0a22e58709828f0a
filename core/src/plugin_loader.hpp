// Finds model plugins, checks them before any of their code runs, and keeps each one loaded for
// as long as a model object made from it exists.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "echod/server_model.hpp"

namespace echod {

// A plugin that passed every check. Cheap to copy; the library stays loaded while any copy of
// the handle (or a model made from it) lives.
struct LoadedPlugin {
  std::filesystem::path path;    // the file's real path, as the kernel resolved it when opened
  std::shared_ptr<void> handle;  // dlclose()s, then closes the file, when the last owner goes
  const PluginDescriptor* descriptor = nullptr;

  [[nodiscard]] std::string_view name() const { return descriptor->name; }
};

// A plugin file that was refused, and why, in one line.
struct PluginProblem {
  std::filesystem::path path;
  std::string reason;
};

// A model object together with the library its code lives in; destroys the model first.
class ModelInstance {
 public:
  ModelInstance(LoadedPlugin plugin, IServerModel* model) noexcept
      : plugin_(std::move(plugin)), model_(model) {}
  ModelInstance(const ModelInstance&) = delete;
  ModelInstance& operator=(const ModelInstance&) = delete;
  ~ModelInstance() { plugin_.descriptor->destroy(model_); }

  IServerModel& model() noexcept { return *model_; }

 private:
  LoadedPlugin plugin_;  // declared first, destroyed last
  IServerModel* model_;
};

// All plugins found so far. Owned by the main thread.
class PluginRegistry {
 public:
  // Loads every "*.so" file in `directory` (sorted by name). Problems are recorded, not thrown.
  // A missing directory is a problem only when `must_exist`.
  void load_directory(const std::filesystem::path& directory, bool must_exist);
  // Loads one file; returns false and records the problem if it is refused. The file is opened
  // once and then checked and loaded only through that descriptor (rules: plugins/README.md):
  // owner and mode of it and of every directory up to /, ABI version and build signature, then
  // dlopen("/proc/self/fd/N"), the descriptor, its options and a name not yet taken.
  bool load_file(const std::filesystem::path& file);

  [[nodiscard]] const LoadedPlugin* find(std::string_view name) const;
  [[nodiscard]] const std::vector<LoadedPlugin>& plugins() const { return plugins_; }
  [[nodiscard]] const std::vector<PluginProblem>& problems() const { return problems_; }
  // "epoll, iterative, ..." for error messages.
  [[nodiscard]] std::string names() const;

 private:
  std::vector<LoadedPlugin> plugins_;
  std::vector<PluginProblem> problems_;
  // Device and inode of every file opened, so a file reached by two names is loaded once.
  struct FileId {
    dev_t device;
    ino_t inode;
    bool operator==(const FileId&) const = default;
  };
  std::vector<FileId> seen_;
};

// The directories searched when no --plugin-dir is given: ECHOD_PLUGIN_PATH (colon-separated)
// first, then the directory beside the running binary that both the build tree and an
// installation use (<bindir>/../lib/echod).
std::vector<std::filesystem::path> default_plugin_dirs();

// "concurrent,forks" for --describe-model; "one-client-at-a-time" when nothing is set.
std::string capability_names(std::uint32_t capabilities);

}  // namespace echod
