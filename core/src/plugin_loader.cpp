#include "plugin_loader.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <system_error>

#ifndef ECHOD_RELATIVE_PLUGIN_DIR
#error "ECHOD_RELATIVE_PLUGIN_DIR must be set by the build"
#endif

namespace echod {
namespace fs = std::filesystem;
namespace {

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Loading code from a place anyone can write to runs anyone's code. A sticky directory such as
// /tmp is still refused for the file itself, but accepted as a directory (only owners can replace
// files there).
std::string check_permissions(const fs::path& file) {
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) return std::string("cannot stat: ") + std::strerror(errno);
  if (!S_ISREG(info.st_mode)) return "not a regular file";
  if (info.st_mode & S_IWOTH) {
    return "refusing to load: the file is writable by anyone (mode " + mode_text(info.st_mode) +
           "); run chmod o-w on it";
  }
  const fs::path directory = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  if (::stat(directory.c_str(), &info) == 0 && (info.st_mode & S_IWOTH) &&
      !(info.st_mode & S_ISVTX)) {
    return "refusing to load: its directory " + directory.string() +
           " is writable by anyone (mode " + mode_text(info.st_mode) + "); run chmod o-w on it";
  }
  return {};
}

const char* last_dlerror() {
  const char* text = ::dlerror();
  return text != nullptr ? text : "unknown dlerror";
}

}  // namespace

bool PluginRegistry::load_file(const fs::path& file) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(file, ec);
  if (ec) canonical = file;
  if (std::find(seen_.begin(), seen_.end(), canonical) != seen_.end()) return true;
  seen_.push_back(canonical);

  auto refuse = [&](std::string reason) {
    problems_.push_back({file, std::move(reason)});
    return false;
  };
  if (std::string reason = check_permissions(file); !reason.empty()) return refuse(reason);

  // RTLD_LOCAL: each plugin's entry symbol and internals stay private to it.
  void* raw = ::dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (raw == nullptr) return refuse(std::string("cannot load: ") + last_dlerror());
  std::shared_ptr<void> handle(raw, [](void* h) { ::dlclose(h); });

  ::dlerror();
  const auto* descriptor = static_cast<const PluginDescriptor*>(::dlsym(raw, ECHOD_PLUGIN_SYMBOL));
  if (descriptor == nullptr) {
    return refuse(std::string("not an echod model: no symbol '" ECHOD_PLUGIN_SYMBOL "' (") +
                  last_dlerror() + ")");
  }
  // Only the first two fields are read before the versions are known to match.
  if (descriptor->abi_version != kAbiVersion) {
    return refuse("incompatible model ABI: plugin has version " +
                  std::to_string(descriptor->abi_version) + ", this echod needs version " +
                  std::to_string(kAbiVersion) + "; rebuild the model against this echod's SDK");
  }
  const char* signature = descriptor->build_signature != nullptr ? descriptor->build_signature : "";
  if (std::strcmp(signature, ECHOD_BUILD_SIGNATURE) != 0) {
    return refuse(std::string("built against a different toolchain: plugin '") + signature +
                  "', echod '" ECHOD_BUILD_SIGNATURE "'; rebuild the model with this echod's SDK");
  }
  if (descriptor->name == nullptr || *descriptor->name == '\0' || descriptor->summary == nullptr ||
      descriptor->declare_options == nullptr || descriptor->create == nullptr ||
      descriptor->destroy == nullptr) {
    return refuse("incomplete descriptor: name, summary and all functions must be set");
  }
  if (const LoadedPlugin* other = find(descriptor->name)) {
    return refuse(std::string("duplicate model name '") + descriptor->name +
                  "': already provided by " + other->path.string());
  }
  plugins_.push_back({canonical, std::move(handle), descriptor});
  return true;
}

void PluginRegistry::load_directory(const fs::path& directory, bool must_exist) {
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    if (must_exist) problems_.push_back({directory, "not a directory"});
    return;
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    if (entry.path().extension() == ".so") files.push_back(entry.path());
  }
  if (ec) problems_.push_back({directory, "cannot read directory: " + ec.message()});
  std::sort(files.begin(), files.end());
  for (const auto& file : files)
    load_file(file);
}

const LoadedPlugin* PluginRegistry::find(std::string_view name) const {
  for (const auto& plugin : plugins_) {
    if (plugin.name() == name) return &plugin;
  }
  return nullptr;
}

std::string PluginRegistry::names() const {
  std::vector<std::string> sorted;
  for (const auto& plugin : plugins_)
    sorted.emplace_back(plugin.name());
  std::sort(sorted.begin(), sorted.end());
  std::string joined;
  for (const auto& name : sorted)
    joined += (joined.empty() ? "" : ", ") + name;
  return joined.empty() ? "(none found)" : joined;
}

std::vector<fs::path> default_plugin_dirs() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("ECHOD_PLUGIN_PATH"); env != nullptr) {
    std::string_view rest(env);
    while (!rest.empty()) {
      auto colon = rest.find(':');
      auto part = rest.substr(0, colon);
      if (!part.empty()) dirs.emplace_back(part);
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    }
  }
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back((self.parent_path() / ECHOD_RELATIVE_PLUGIN_DIR).lexically_normal());
  return dirs;
}

std::string capability_names(std::uint32_t capabilities) {
  std::string names;
  auto add = [&](std::uint32_t bit, const char* name) {
    if (capabilities & bit) names += (names.empty() ? "" : ",") + std::string(name);
  };
  add(kCapConcurrent, "concurrent");
  add(kCapForks, "forks");
  add(kCapMultiThreaded, "multi-threaded");
  return names.empty() ? "one-client-at-a-time" : names;
}

}  // namespace echod
