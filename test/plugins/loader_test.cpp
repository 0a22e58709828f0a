// The plugin loader against plugins broken on purpose (test/fixtures): each is refused with a
// reason that names what is wrong, and the plugins around it still load.
#define CATCH_CONFIG_MAIN
#include <dlfcn.h>
#include <sys/stat.h>

#include <boost/version.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "plugin_loader.hpp"

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

// A private directory (mode 0700, from mkdtemp) holding a copy of the good fixture.
struct ScratchCopy {
  ScratchCopy() {
    std::string pattern = (fs::temp_directory_path() / "echod-loader-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    directory = pattern;
    file = directory / "echod-model-fixture.so";
    fs::copy_file(fixture("good", "fixture"), file);
  }
  ~ScratchCopy() {
    std::error_code ec;
    fs::permissions(directory, fs::perms::owner_all, ec);
    fs::remove_all(directory, ec);
  }
  ScratchCopy(const ScratchCopy&) = delete;
  ScratchCopy& operator=(const ScratchCopy&) = delete;
  fs::path directory;
  fs::path file;
};

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
            fs::canonical(fixture("duplicate", "twin-a")).string());
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

TEST_CASE("a symbolic link is checked where it points too") {
  ScratchCopy open_directory;
  ::chmod(open_directory.directory.c_str(), 0777);
  ScratchCopy links;
  const fs::path link = links.directory / "echod-model-link.so";
  fs::create_symlink(open_directory.file, link);
  const std::string reason = refusal(link);
  CHECK_THAT(reason, Catch::Contains("its directory " + open_directory.directory.string()));
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
