#include "plugin_loader.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <system_error>
#include <variant>

#include "echod/fd.hpp"

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

// sshd's StrictModes rule, applied to the plugin file and to every directory above it: loading
// code that someone else could replace runs their code. Each must be owned by root or by the
// user running echod and writable by nobody else. A sticky directory such as /tmp may be group-
// or world-writable: there only a file's owner can rename or delete it. `what` names the object
// in the message ("the file", "its directory /x").
std::string check_owner_and_mode(const struct stat& info, const std::string& what, bool directory) {
  const uid_t self = ::geteuid();
  if (info.st_uid != 0 && info.st_uid != self) {
    return "refusing to load: " + what + " is owned by uid " + std::to_string(info.st_uid) +
           ", not by root or the user running echod (uid " + std::to_string(self) +
           "), so that user could replace the code echod would run; chown it";
  }
  const bool sticky = directory && (info.st_mode & S_ISVTX);
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) && !sticky) {
    const bool anyone = info.st_mode & S_IWOTH;
    return "refusing to load: " + what + " is writable by " + (anyone ? "anyone" : "its group") +
           " (mode " + mode_text(info.st_mode) + "), so " + (anyone ? "anyone" : "its group") +
           " could replace the code echod would run; run chmod " + (anyone ? "o-w" : "g-w") +
           " on it";
  }
  return {};
}

// The path a descriptor refers to, as the kernel resolved it (for messages and ".." walks).
fs::path path_of(int fd) {
  std::error_code ec;
  fs::path path = fs::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
  return ec ? fs::path() : path;
}

// `directory` and the directories holding it, up to /, each opened from the one below by
// "..", so they are the directories the file really is in, whatever symbolic links the name
// went through, and each checked through its own descriptor.
std::string check_directories(Fd directory, fs::path name) {
  for (;;) {
    struct stat info {};
    if (::fstat(directory.get(), &info) != 0) {
      return "cannot stat directory " + name.string() + ": " + std::strerror(errno);
    }
    if (std::string reason = check_owner_and_mode(info, "its directory " + name.string(), true);
        !reason.empty()) {
      return reason;
    }
    Fd parent(::openat(directory.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat parent_info {};
    if (!parent || ::fstat(parent.get(), &parent_info) != 0) {
      return "cannot open the directory above " + name.string() + ": " + std::strerror(errno);
    }
    if (parent_info.st_dev == info.st_dev && parent_info.st_ino == info.st_ino) return {};  // "/"
    directory = std::move(parent);
    name = name.has_relative_path() ? name.parent_path() : path_of(directory.get());
  }
}

// A candidate plugin file, opened once; every later check and the load itself go through this
// descriptor, never through the name again.
struct OpenedPlugin {
  Fd fd;
  struct stat info {};
};

// Opens `file` without following a final symbolic link and checks it and its directories. On
// failure returns the reason instead.
std::variant<OpenedPlugin, std::string> open_checked(const fs::path& file) {
  const fs::path directory_name = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  Fd directory(::open(directory_name.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!directory) return "cannot open: " + std::string(std::strerror(errno));
  OpenedPlugin plugin;
  // O_NONBLOCK: a FIFO or device named like a plugin must not block the open; it is refused as
  // not a regular file just below. (The load opens /proc/self/fd/N afresh, without the flag.)
  plugin.fd.reset(::openat(directory.get(), file.filename().c_str(),
                           O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!plugin.fd) {
    if (errno == ELOOP) {
      return std::string("refusing to load: it is a symbolic link; name the file it points to");
    }
    return "cannot open: " + std::string(std::strerror(errno));
  }
  if (::fstat(plugin.fd.get(), &plugin.info) != 0) {
    return "cannot stat: " + std::string(std::strerror(errno));
  }
  if (!S_ISREG(plugin.info.st_mode)) return std::string("not a regular file");
  if (std::string reason = check_owner_and_mode(plugin.info, "the file", false); !reason.empty()) {
    return reason;
  }
  // Named as the kernel resolved it, so a message names the real directory.
  fs::path resolved = path_of(directory.get());
  if (resolved.empty()) resolved = fs::absolute(directory_name);
  if (std::string reason = check_directories(std::move(directory), resolved); !reason.empty()) {
    return reason;
  }
  return plugin;
}

// dlerror()'s text, naming the file instead of the /proc/self/fd/N name it was loaded by.
std::string last_dlerror(const std::string& loaded_as, const fs::path& file) {
  const char* raw = ::dlerror();
  std::string text = raw != nullptr ? raw : "unknown dlerror";
  for (auto at = text.find(loaded_as); at != std::string::npos; at = text.find(loaded_as, at)) {
    text.replace(at, loaded_as.size(), file.string());
    at += file.string().size();
  }
  return text;
}

// Why a plugin with this ABI version and build signature cannot run in this echod, naming both
// sides and, for the signature, the components that differ; empty if it can.
std::string incompatibility(std::uint32_t abi_version, const std::string& signature) {
  if (abi_version != kAbiVersion) {
    return "incompatible model ABI: plugin has version " + std::to_string(abi_version) +
           ", this echod needs version " + std::to_string(kAbiVersion) +
           "; rebuild the model against this echod's SDK";
  }
  if (signature == ECHOD_BUILD_SIGNATURE) return {};
  // Components are "name-version" words; list the ones whose versions differ.
  auto words = [](const std::string& text) {
    std::vector<std::string> list;
    std::istringstream stream(text);
    for (std::string word; stream >> word;)
      list.push_back(word);
    return list;
  };
  const auto plugin_words = words(signature);
  std::string differences;
  for (const auto& ours : words(ECHOD_BUILD_SIGNATURE)) {
    const std::string component = ours.substr(0, ours.find('-') + 1);
    auto theirs = std::find_if(plugin_words.begin(), plugin_words.end(), [&](const auto& word) {
      return word.compare(0, component.size(), component) == 0;
    });
    if (theirs == plugin_words.end() || *theirs != ours) {
      differences += (differences.empty() ? "" : ", ") +
                     (theirs == plugin_words.end() ? component + "?" : *theirs) + " vs " + ours;
    }
  }
  if (differences.empty()) differences = "the signatures differ";
  // The SDK component alone differing means the same toolchain but other headers: say which
  // headers to rebuild against instead of blaming the compiler.
  const bool only_sdk =
      differences.rfind("sdk-", 0) == 0 && differences.find(", ") == std::string::npos;
  if (only_sdk) {
    return "built against other SDK headers (" + differences + "): plugin '" + signature +
           "', echod '" + ECHOD_BUILD_SIGNATURE +
           "'; rebuild the model against the SDK headers installed with this echod "
           "(<prefix>/include/echod, through find_package(echod) and echod_add_model)";
  }
  return "built with a different toolchain (" + differences + "): plugin '" + signature +
         "', echod '" + ECHOD_BUILD_SIGNATURE +
         "'; rebuild the model with this echod's compiler and SDK";
}

// ---- The descriptor's frozen head, read from the file before dlopen() runs any plugin code ----
// dlopen() runs a library's static initialisers, so a plugin built for another ABI or toolchain
// could crash echod before any check. These two fields are therefore read from the ELF file
// itself: the entry symbol's address from the dynamic symbol table, the ABI version at that
// address, and the build signature through the relative relocation that fills that pointer.
// Anything unexpected returns nothing, and the same checks then run after dlopen() instead.

#if defined(__x86_64__)
constexpr unsigned kElfMachine = EM_X86_64;
constexpr unsigned kRelativeRelocation = R_X86_64_RELATIVE;
#elif defined(__aarch64__)
constexpr unsigned kElfMachine = EM_AARCH64;
constexpr unsigned kRelativeRelocation = R_AARCH64_RELATIVE;
#else
constexpr unsigned kElfMachine = EM_NONE;  // no early check; dlopen() and the checks after it
constexpr unsigned kRelativeRelocation = 0;
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr unsigned char kElfData = ELFDATA2LSB;
#else
constexpr unsigned char kElfData = ELFDATA2MSB;
#endif

// A whole file mapped read-only, with bounds-checked reads. Owned by the loading thread.
class MappedFile {
 public:
  MappedFile(int fd, std::size_t size) {
    if (size == 0) return;
    void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) return;
    data_ = static_cast<const char*>(data);
    size_ = size;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }

  template <typename T>
  bool read(std::uint64_t offset, T& out) const {
    if (offset > size_ || sizeof(T) > size_ - offset) return false;
    std::memcpy(&out, data_ + offset, sizeof(T));
    return true;
  }
  // The NUL-terminated text at `offset`, if it ends within `max` bytes.
  std::optional<std::string> text(std::uint64_t offset, std::size_t max) const {
    if (offset >= size_) return std::nullopt;
    const std::size_t room = std::min<std::size_t>(max, size_ - offset);
    const void* end = std::memchr(data_ + offset, '\0', room);
    if (end == nullptr) return std::nullopt;
    return std::string(data_ + offset, static_cast<const char*>(end));
  }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

struct DescriptorHead {
  std::uint32_t abi_version = 0;
  std::optional<std::string> build_signature;  // absent when the pointer could not be followed
};

std::optional<DescriptorHead> read_descriptor_head(const OpenedPlugin& file) {
  if (kElfMachine == EM_NONE || file.info.st_size <= 0) return std::nullopt;
  const MappedFile image(file.fd.get(), static_cast<std::size_t>(file.info.st_size));
  Elf64_Ehdr header{};
  if (!image.read(0, header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
      header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != kElfData ||
      header.e_type != ET_DYN || header.e_machine != kElfMachine ||
      header.e_shentsize != sizeof(Elf64_Shdr) || header.e_phentsize != sizeof(Elf64_Phdr)) {
    return std::nullopt;
  }
  auto section = [&](std::uint64_t index, Elf64_Shdr& out) {
    return index < header.e_shnum && image.read(header.e_shoff + index * sizeof out, out);
  };
  // Where the byte at a (load-relative) virtual address sits in the file.
  auto file_offset = [&](std::uint64_t address) -> std::optional<std::uint64_t> {
    for (std::uint64_t i = 0; i < header.e_phnum; ++i) {
      Elf64_Phdr segment{};
      if (!image.read(header.e_phoff + i * sizeof segment, segment)) return std::nullopt;
      if (segment.p_type == PT_LOAD && address >= segment.p_vaddr &&
          address - segment.p_vaddr < segment.p_filesz) {
        return segment.p_offset + (address - segment.p_vaddr);
      }
    }
    return std::nullopt;
  };

  std::optional<std::uint64_t> address;
  Elf64_Shdr table{};
  for (std::uint64_t i = 0; i < header.e_shnum && !address; ++i) {
    Elf64_Shdr names{};
    if (!section(i, table) || table.sh_type != SHT_DYNSYM || !section(table.sh_link, names)) {
      continue;
    }
    for (std::uint64_t j = 0; j < table.sh_size / sizeof(Elf64_Sym); ++j) {
      Elf64_Sym symbol{};
      if (!image.read(table.sh_offset + j * sizeof symbol, symbol)) break;
      if (symbol.st_shndx == SHN_UNDEF || symbol.st_name >= names.sh_size) continue;
      if (image.text(names.sh_offset + symbol.st_name, names.sh_size - symbol.st_name) ==
          ECHOD_PLUGIN_SYMBOL) {
        address = symbol.st_value;
        break;
      }
    }
  }
  DescriptorHead head;
  const auto abi_at = address ? file_offset(*address) : std::nullopt;
  if (!abi_at || !image.read(*abi_at, head.abi_version)) return std::nullopt;

  // The signature pointer: the addend of the relative relocation aimed at it, or the value
  // stored in place (packed RELR relocations keep the addend there).
  const std::uint64_t field = *address + offsetof(PluginDescriptor, build_signature);
  std::optional<std::uint64_t> target;
  for (std::uint64_t i = 0; i < header.e_shnum && !target; ++i) {
    if (!section(i, table) || table.sh_type != SHT_RELA) continue;
    for (std::uint64_t j = 0; j < table.sh_size / sizeof(Elf64_Rela); ++j) {
      Elf64_Rela relocation{};
      if (!image.read(table.sh_offset + j * sizeof relocation, relocation)) break;
      if (relocation.r_offset == field) {
        if (ELF64_R_TYPE(relocation.r_info) == kRelativeRelocation) {
          target = static_cast<std::uint64_t>(relocation.r_addend);
        }
        break;
      }
    }
  }
  if (!target) {
    std::uint64_t in_place = 0;
    const auto field_at = file_offset(field);
    if (field_at && image.read(*field_at, in_place) && in_place != 0) target = in_place;
  }
  if (const auto text_at = target ? file_offset(*target) : std::nullopt) {
    head.build_signature = image.text(*text_at, 1024);
  }
  return head;
}

// Declares the model's options into a scratch description, as every run will, and checks that
// each is named "<model>.<key>": any other name would clash with core's keys or another model's.
std::string check_options(const PluginDescriptor& descriptor) {
  boost::program_options::options_description options;
  PluginError error;
  if (!descriptor.declare_options(options, error)) {
    return std::string("cannot declare its options: ") +
           (*error.message != '\0' ? error.message : "no reason given");
  }
  const std::string prefix = std::string(descriptor.name) + ".";
  for (const auto& option : options.options()) {
    if (option->long_name().compare(0, prefix.size(), prefix) != 0) {
      return "declares option '" + option->long_name() + "' outside its namespace; name it '" +
             prefix + "<key>'";
    }
  }
  return {};
}

}  // namespace

bool PluginRegistry::load_file(const fs::path& file) {
  auto refuse = [&](std::string reason) {
    problems_.push_back({file, std::move(reason)});
    return false;
  };
  auto opened = open_checked(file);
  if (auto* reason = std::get_if<std::string>(&opened)) return refuse(std::move(*reason));
  OpenedPlugin& candidate = std::get<OpenedPlugin>(opened);
  const FileId id{candidate.info.st_dev, candidate.info.st_ino};
  if (std::find(seen_.begin(), seen_.end(), id) != seen_.end()) return true;
  seen_.push_back(id);
  fs::path real_path = path_of(candidate.fd.get());
  if (real_path.empty()) real_path = fs::absolute(file);

  // Versions first, from the file, so an incompatible plugin never runs a line of its code. A
  // signature the file read could not follow is checked after dlopen() instead.
  if (const auto head = read_descriptor_head(candidate)) {
    if (std::string reason = incompatibility(head->abi_version,
                                             head->build_signature.value_or(ECHOD_BUILD_SIGNATURE));
        !reason.empty()) {
      return refuse(reason);
    }
  }

  // The very file checked above, through its descriptor: replacing the name in the meantime
  // changes nothing. The descriptor stays open while the library is loaded, so no other plugin
  // is ever loaded under the same /proc/self/fd/N name (glibc matches loaded libraries by name).
  // RTLD_LOCAL: each plugin's entry symbol and internals stay private to it.
  const std::string by_descriptor = "/proc/self/fd/" + std::to_string(candidate.fd.get());
  void* raw = ::dlopen(by_descriptor.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (raw == nullptr) return refuse("cannot load: " + last_dlerror(by_descriptor, real_path));
  std::shared_ptr<void> handle(raw, [fd = candidate.fd.release()](void* h) {
    ::dlclose(h);
    ::close(fd);
  });

  ::dlerror();
  const auto* descriptor = static_cast<const PluginDescriptor*>(::dlsym(raw, ECHOD_PLUGIN_SYMBOL));
  if (descriptor == nullptr) {
    return refuse(std::string("not an echod model: no symbol '" ECHOD_PLUGIN_SYMBOL "' (") +
                  last_dlerror(by_descriptor, real_path) + ")");
  }
  // The same checks on the loaded descriptor, for files the early read could not follow. Only
  // the first two fields, frozen for every ABI version, are read before the versions match.
  const char* signature = descriptor->build_signature != nullptr ? descriptor->build_signature : "";
  if (std::string reason = incompatibility(descriptor->abi_version, signature); !reason.empty()) {
    return refuse(reason);
  }
  if (descriptor->name == nullptr || *descriptor->name == '\0' || descriptor->summary == nullptr ||
      descriptor->declare_options == nullptr || descriptor->create == nullptr ||
      descriptor->destroy == nullptr) {
    return refuse("incomplete descriptor: name, summary and all functions must be set");
  }
  // Never silent, and never a guess: the file found first in the search order is used, and this
  // one is reported with both names (a plugin in ECHOD_PLUGIN_PATH that shadows a built-in says
  // so on every run).
  if (const LoadedPlugin* other = find(descriptor->name)) {
    return refuse(std::string("duplicate model name '") + descriptor->name +
                  "': already provided by " + other->path.string() +
                  ", found earlier in the search order, which is the one used");
  }
  // Every run declares every loaded model's options, so a model that cannot is refused here,
  // like any other broken plugin, instead of breaking runs that select another model.
  if (std::string reason = check_options(*descriptor); !reason.empty()) return refuse(reason);
  plugins_.push_back({std::move(real_path), std::move(handle), descriptor});
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
  add(kCapReusePort, "reuseport");
  add(kCapEventDriven, "event-driven");
  return names.empty() ? "one-client-at-a-time" : names;
}

}  // namespace echod
