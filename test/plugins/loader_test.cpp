// The plugin loader against plugins broken on purpose (test/fixtures): each is refused with a
// reason that names what is wrong, and the plugins around it still load.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/version.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "plugin_loader.hpp"

// ---- A file swapped under the loader ----
// This test binary interposes dlopen(): when armed, it renames `replacement` over `target`
// immediately before forwarding the call, i.e. after the loader opened and checked the target
// and at the last moment before anything is loaded. A loader that loads by name then loads the
// replacement; one that loads the descriptor it checked does not notice.
namespace swap {
std::filesystem::path target;
std::filesystem::path replacement;
bool armed = false;
std::vector<std::string> swapped_before;  // the names dlopen() was called with after a swap
}  // namespace swap

extern "C" void* dlopen(const char* file, int mode) noexcept {
  using Dlopen = void* (*)(const char*, int);
  static const auto real = reinterpret_cast<Dlopen>(::dlsym(RTLD_NEXT, "dlopen"));
  if (swap::armed && file != nullptr) {
    swap::armed = false;
    std::filesystem::rename(swap::replacement, swap::target);
    swap::swapped_before.emplace_back(file);
  }
  return real(file, mode);
}

namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;
using echod::PluginRegistry;

const fs::path kFixtures = ECHOD_FIXTURE_DIR;

fs::path fixture(const std::string& case_name, const std::string& stem) {
  return kFixtures / case_name / ("echod-model-" + stem + ".so");
}

// Loads one file that must be refused and returns the single reason recorded for it.
std::string refusal(const fs::path& file) {
  ::unsetenv("ECHOD_FIXTURE_CODE_RAN");
  PluginRegistry registry;
  CHECK_FALSE(registry.load_file(file));
  CHECK(registry.plugins().empty());
  REQUIRE(registry.problems().size() == 1);
  CHECK(registry.problems().front().path == file);
  return registry.problems().front().reason;
}

bool library_loaded(const fs::path& file) {
  void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle != nullptr) ::dlclose(handle);
  return handle != nullptr;
}

// A settings map holding the defaults of one model's options, as echod's second parse makes.
po::variables_map defaults_of(const echod::PluginDescriptor& descriptor) {
  po::options_description options;
  echod::PluginError error;
  REQUIRE(descriptor.declare_options(options, error));
  po::variables_map settings;
  const char* argv[] = {"echod"};
  po::store(po::parse_command_line(1, argv, options), settings);
  po::notify(settings);
  return settings;
}

// A private directory (mode 0700, from mkdtemp) holding a copy of the good fixture, optionally
// one level further down (`subdirectory`), so the directory above the file can be tested.
struct ScratchCopy {
  explicit ScratchCopy(const std::string& subdirectory = "") {
    std::string pattern = (fs::temp_directory_path() / "echod-loader-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    top = pattern;
    directory = subdirectory.empty() ? top : top / subdirectory;
    fs::create_directories(directory);
    ::chmod(directory.c_str(), 0755);
    file = directory / "echod-model-fixture.so";
    fs::copy_file(fixture("good", "fixture"), file);
    ::chmod(file.c_str(), 0644);
  }
  ~ScratchCopy() {
    std::error_code ec;
    fs::permissions(top, fs::perms::owner_all, ec);
    fs::permissions(directory, fs::perms::owner_all, ec);
    fs::remove_all(top, ec);
  }
  ScratchCopy(const ScratchCopy&) = delete;
  ScratchCopy& operator=(const ScratchCopy&) = delete;
  fs::path top;
  fs::path directory;
  fs::path file;
};

// Some user other than the one running the tests, and not root: "nobody" on Debian.
constexpr uid_t kOtherUser = 65534;
std::string other_owner_reason(const std::string& what) {
  return "refusing to load: " + what + " is owned by uid " + std::to_string(kOtherUser) +
         ", not by root or the user running echod (uid " + std::to_string(::geteuid()) +
         "), so that user could replace the code echod would run; chown it";
}

}  // namespace

TEST_CASE("a good plugin loads and is found by its name") {
  PluginRegistry registry;
  const fs::path file = fixture("good", "fixture");
  REQUIRE(registry.load_file(file));
  REQUIRE(registry.problems().empty());
  const echod::LoadedPlugin* plugin = registry.find("fixture");
  REQUIRE(plugin != nullptr);
  CHECK(plugin->path == fs::canonical(file));
  CHECK(plugin->descriptor->abi_version == echod::kAbiVersion);
  CHECK(std::string(plugin->descriptor->build_signature) == ECHOD_BUILD_SIGNATURE);
  CHECK(registry.names() == "fixture");
  CHECK(registry.find("nosuch") == nullptr);
}

TEST_CASE("the same file named twice is loaded once") {
  PluginRegistry registry;
  CHECK(registry.load_file(fixture("good", "fixture")));
  CHECK(registry.load_file(kFixtures / "good" / ".." / "good" / "echod-model-fixture.so"));
  CHECK(registry.plugins().size() == 1);
  CHECK(registry.problems().empty());
}

TEST_CASE("a file that is not a shared library is refused with dlerror's text") {
  const std::string reason = refusal(fixture("not-elf", "not-elf"));
  CHECK_THAT(reason, Catch::StartsWith("cannot load: "));
  CHECK_THAT(reason, Catch::Contains("echod-model-not-elf.so"));
  CHECK_THAT(reason, Catch::Contains("invalid ELF header") || Catch::Contains("file too short"));
}

TEST_CASE("a library without the entry symbol is refused with dlerror's text") {
  const std::string reason = refusal(fixture("no-symbol", "no-symbol"));
  CHECK_THAT(reason, Catch::StartsWith("not an echod model: no symbol 'echod_plugin_descriptor'"));
  CHECK_THAT(reason, Catch::Contains("undefined symbol: echod_plugin_descriptor"));
}

TEST_CASE("another ABI version is refused with both versions before any plugin code runs") {
  const fs::path file = fixture("bad-abi", "bad-abi");
  const std::string reason = refusal(file);
  CHECK(reason == "incompatible model ABI: plugin has version " +
                      std::to_string(echod::kAbiVersion + 1) + ", this echod needs version " +
                      std::to_string(echod::kAbiVersion) +
                      "; rebuild the model against this echod's SDK");
  CHECK(std::getenv("ECHOD_FIXTURE_CODE_RAN") == nullptr);  // its initialiser never ran
  CHECK_FALSE(library_loaded(file));
}

TEST_CASE("another build signature is refused with both signatures before any plugin code runs") {
  const fs::path file = fixture("bad-signature", "bad-signature");
  const std::string reason = refusal(file);
  CHECK_THAT(reason, Catch::StartsWith("built with a different toolchain (boost-999999 vs boost-" +
                                       std::to_string(BOOST_VERSION) + "): plugin '"));
  CHECK_THAT(reason, Catch::Contains("', echod '" ECHOD_BUILD_SIGNATURE "'"));
  CHECK(std::getenv("ECHOD_FIXTURE_CODE_RAN") == nullptr);
  CHECK_FALSE(library_loaded(file));
}

TEST_CASE("a descriptor without a create function is refused") {
  CHECK(refusal(fixture("incomplete", "incomplete")) ==
        "incomplete descriptor: name, summary and all functions must be set");
}

TEST_CASE("a model whose declare_options throws is refused when loaded") {
  CHECK(refusal(fixture("options-throw", "options-throw")) ==
        "cannot declare its options: options-throw.size: default value out of range");
}

TEST_CASE("a model declaring a key outside its namespace is refused when loaded") {
  CHECK(refusal(fixture("stray-option", "stray-option")) ==
        "declares option 'port' outside its namespace; name it 'stray-option.<key>'");
}

TEST_CASE("a duplicate model name: the first file wins and the second is refused naming both") {
  PluginRegistry registry;
  registry.load_directory(kFixtures / "duplicate", /*must_exist=*/true);
  REQUIRE(registry.plugins().size() == 1);
  CHECK(registry.plugins().front().path == fs::canonical(fixture("duplicate", "twin-a")));
  REQUIRE(registry.problems().size() == 1);
  CHECK(registry.problems().front().path == fixture("duplicate", "twin-b"));
  CHECK(registry.problems().front().reason ==
        "duplicate model name 'twin': already provided by " +
            fs::canonical(fixture("duplicate", "twin-a")).string() +
            ", found earlier in the search order, which is the one used");
}

TEST_CASE("broken plugins are recorded and the good ones around them still load") {
  PluginRegistry registry;
  for (const char* name : {"not-elf", "bad-abi", "good", "no-symbol", "options-throw"}) {
    registry.load_directory(kFixtures / name, /*must_exist=*/true);
  }
  CHECK(registry.names() == "fixture");
  CHECK(registry.problems().size() == 4);
}

TEST_CASE("a missing directory is a problem only when it was asked for") {
  PluginRegistry registry;
  registry.load_directory(kFixtures / "nosuch", /*must_exist=*/false);
  CHECK(registry.problems().empty());
  registry.load_directory(kFixtures / "nosuch", /*must_exist=*/true);
  REQUIRE(registry.problems().size() == 1);
  CHECK(registry.problems().front().reason == "not a directory");
}

TEST_CASE("a plugin anyone can write to is refused and says why") {
  ScratchCopy copy;
  fs::permissions(copy.file, fs::perms::others_write, fs::perm_options::add);
  const std::string reason = refusal(copy.file);
  CHECK_THAT(reason, Catch::StartsWith("refusing to load: the file is writable by anyone (mode "));
  CHECK_THAT(reason, Catch::Contains("anyone could replace the code echod would run"));
}

TEST_CASE("a plugin in a directory anyone can write to is refused unless it is sticky") {
  ScratchCopy copy;
  ::chmod(copy.directory.c_str(), 0777);
  const std::string reason = refusal(copy.file);
  CHECK(reason == "refusing to load: its directory " + copy.directory.string() +
                      " is writable by anyone (mode 0777), so anyone could replace the code "
                      "echod would run; run chmod o-w on it");

  ::chmod(copy.directory.c_str(), 01777);  // like /tmp: only a file's owner may replace it
  PluginRegistry registry;
  CHECK(registry.load_file(copy.file));
  CHECK(registry.problems().empty());
}

TEST_CASE("a symbolic link as the file is refused: the file itself must be named") {
  ScratchCopy target;
  ScratchCopy links;
  const fs::path link = links.directory / "echod-model-link.so";
  fs::create_symlink(target.file, link);
  CHECK(refusal(link) == "refusing to load: it is a symbolic link; name the file it points to");
}

TEST_CASE("a directory reached through a symbolic link is checked where it really is") {
  ScratchCopy open_directory;
  ::chmod(open_directory.directory.c_str(), 0777);
  ScratchCopy links;
  const fs::path linked_directory = links.directory / "models";
  fs::create_directory_symlink(open_directory.directory, linked_directory);
  const std::string reason = refusal(linked_directory / "echod-model-fixture.so");
  CHECK(reason == "refusing to load: its directory " + open_directory.directory.string() +
                      " is writable by anyone (mode 0777), so anyone could replace the code "
                      "echod would run; run chmod o-w on it");
}

TEST_CASE("a FIFO named like a plugin is refused without blocking") {
  ScratchCopy copy;
  const fs::path fifo = copy.directory / "echod-model-fifo.so";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  CHECK(refusal(fifo) == "not a regular file");
}

TEST_CASE("a plugin its group can write to is refused and says why") {
  ScratchCopy copy;
  ::chmod(copy.file.c_str(), 0664);
  CHECK(refusal(copy.file) ==
        "refusing to load: the file is writable by its group (mode 0664), so its group could "
        "replace the code echod would run; run chmod g-w on it");
}

TEST_CASE("every directory up to / is checked, not only the file's own") {
  ScratchCopy copy("models");
  ::chmod(copy.top.c_str(), 0775);  // the directory above the plugin's directory
  CHECK(refusal(copy.file) == "refusing to load: its directory " + copy.top.string() +
                                  " is writable by its group (mode 0775), so its group could "
                                  "replace the code echod would run; run chmod g-w on it");
  ::chmod(copy.top.c_str(), 0755);
  PluginRegistry registry;
  CHECK(registry.load_file(copy.file));
  CHECK(registry.problems().empty());
}

TEST_CASE("a plugin owned by another user is refused and says why") {
  REQUIRE(::geteuid() != kOtherUser);
  ScratchCopy copy;
  if (::geteuid() == 0) {
    REQUIRE(::chown(copy.file.c_str(), kOtherUser, kOtherUser) == 0);
    CHECK(refusal(copy.file) == other_owner_reason("the file"));
  } else {
    // Without root a file cannot be given away; one owned by root is accepted like one's own.
    PluginRegistry registry;
    CHECK(registry.load_file(fixture("good", "fixture")));
  }
}

TEST_CASE("a plugin in a directory owned by another user is refused and says why") {
  ScratchCopy copy("models");
  if (::geteuid() == 0) {
    REQUIRE(::chown(copy.directory.c_str(), kOtherUser, kOtherUser) == 0);
    CHECK(refusal(copy.file) == other_owner_reason("its directory " + copy.directory.string()));
  } else {
    PluginRegistry registry;
    CHECK(registry.load_file(copy.file));
  }
}

TEST_CASE("a model built against other SDK headers is refused with both hashes") {
  const fs::path file = fixture("bad-sdk", "bad-sdk");
  const std::string reason = refusal(file);
  CHECK_THAT(reason, Catch::StartsWith("built against other SDK headers (sdk-0123456789abcdef vs "
                                       "sdk-" ECHOD_SDK_HASH "): plugin '"));
  CHECK_THAT(reason, Catch::Contains("', echod '" ECHOD_BUILD_SIGNATURE "'"));
  CHECK_THAT(reason, Catch::EndsWith("rebuild the model against the SDK headers installed with "
                                     "this echod (<prefix>/include/echod, through "
                                     "find_package(echod) and echod_add_model)"));
  CHECK(std::getenv("ECHOD_FIXTURE_CODE_RAN") == nullptr);
  CHECK_FALSE(library_loaded(file));
}

TEST_CASE("a file swapped after it was checked and before it is loaded changes nothing") {
  ::unsetenv("ECHOD_FIXTURE_CODE_RAN");
  ScratchCopy copy;
  const fs::path impostor = copy.directory / "impostor.tmp";
  fs::copy_file(fixture("impostor", "impostor"), impostor);
  struct stat impostor_info {};
  REQUIRE(::stat(impostor.c_str(), &impostor_info) == 0);

  swap::target = copy.file;
  swap::replacement = impostor;
  swap::swapped_before.clear();
  swap::armed = true;
  PluginRegistry registry;
  const bool loaded = registry.load_file(copy.file);
  swap::armed = false;

  // The swap happened, right before the load: the name now leads to the impostor...
  REQUIRE(swap::swapped_before.size() == 1);
  CHECK_THAT(swap::swapped_before.front(), Catch::StartsWith("/proc/self/fd/"));
  struct stat now_at_path {};
  REQUIRE(::stat(copy.file.c_str(), &now_at_path) == 0);
  CHECK(now_at_path.st_ino == impostor_info.st_ino);
  // ...yet what was loaded is the file that was checked, and none of the impostor's code ran.
  CHECK(loaded);
  CHECK(registry.problems().empty());
  CHECK(registry.names() == "fixture");
  CHECK(std::getenv("ECHOD_FIXTURE_CODE_RAN") == nullptr);
}

TEST_CASE("the impostor fixture announces itself when it is loaded by name") {
  // The other half of the swap test: the replacement is loadable and would have been noticed.
  ::unsetenv("ECHOD_FIXTURE_CODE_RAN");
  PluginRegistry registry;
  REQUIRE(registry.load_file(fixture("impostor", "impostor")));
  CHECK(registry.names() == "impostor");
  const char* ran = std::getenv("ECHOD_FIXTURE_CODE_RAN");
  REQUIRE(ran != nullptr);
  CHECK(std::string(ran) == "impostor");
}

TEST_CASE("create failing or throwing comes back as error text, not an exception") {
  PluginRegistry registry;
  registry.load_directory(kFixtures / "create-throws", true);
  registry.load_directory(kFixtures / "create-fails", true);
  REQUIRE(registry.problems().empty());
  for (const auto& [name, message] :
       {std::pair{"create-throws", "create-throws.limit must be at least 1, not 0"},
        std::pair{"create-fails", "cannot open /dev/echod-fixture: No such file or directory"}}) {
    const echod::LoadedPlugin* plugin = registry.find(name);
    REQUIRE(plugin != nullptr);
    echod::PluginError error;
    CHECK(plugin->descriptor->create(defaults_of(*plugin->descriptor), error) == nullptr);
    CHECK(std::string(error.message) == message);
  }
}

TEST_CASE("a model keeps its library loaded after the registry is gone") {
  const fs::path file = fs::canonical(fixture("good", "fixture"));
  std::optional<echod::ModelInstance> instance;
  {
    PluginRegistry registry;
    REQUIRE(registry.load_file(file));
    const echod::LoadedPlugin& plugin = registry.plugins().front();
    echod::PluginError error;
    echod::IServerModel* model = plugin.descriptor->create(defaults_of(*plugin.descriptor), error);
    REQUIRE(model != nullptr);
    instance.emplace(plugin, model);
  }
  CHECK(library_loaded(file));
  instance.reset();  // destroys the model through the plugin, then releases the library
  CHECK_FALSE(library_loaded(file));
}
