// echod's settings parser, as run_echod() uses it: the command line and an INI file, first
// leniently with the core keys only (strict=false), then strictly with the core keys and a
// model's keys (strict=true), each followed by core_settings(). The only exception allowed out
// is the documented UsageError (one line, exit 2); anything else escaping is a crash.
//
// Input: the command-line words, separated by '\n', then a '\f', then the INI file's text. With
// no '\f' there is no config file. The harness chooses the only file the parser may read: its
// own in-memory file, named by --config=/proc/self/fd/N.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "echod/fd.hpp"
#include "fuzz_target.hpp"

namespace {

namespace po = boost::program_options;

// Keys shaped like a model's ("<model>.<key>"), of each kind models declare.
po::options_description model_options() {
  po::options_description options("Model 'fuzz'");
  options.add_options()                                            //
      ("fuzz.workers", po::value<int>()->default_value(4), "int")  //
      ("fuzz.limit", po::value<std::size_t>()->default_value(1024), "size")(
          "fuzz.timeout", po::value<unsigned>()->default_value(5), "unsigned")(
          "fuzz.name", po::value<std::string>()->default_value("x"), "text")(
          "fuzz.paths", po::value<std::vector<std::string>>()->composing(), "repeated")(
          "fuzz.verbose", po::bool_switch(), "switch");
  return options;
}

// Which --config the command line names, as the parser will read it; empty if none. The same
// lenient parse parse_settings() starts with, so prefixes ("--conf"), "-c" and "-cFILE" count.
std::string named_config(const std::vector<const char*>& argv,
                         const po::options_description& core) {
  try {
    po::variables_map settings;
    po::store(po::command_line_parser(static_cast<int>(argv.size()), argv.data())
                  .options(core)
                  .allow_unregistered()
                  .run(),
              settings);
    return settings.count("config") ? settings["config"].as<std::string>() : std::string();
  } catch (const po::error&) {
    return {};  // parse_settings() fails the same way before it reads any file
  }
}

void both_passes(const std::vector<const char*>& argv) {
  const po::options_description core = echod::core_options();
  const int argc = static_cast<int>(argv.size());
  try {
    (void)echod::core_settings(echod::parse_settings(argc, argv.data(), core, false));
  } catch (const echod::UsageError&) {
  }
  po::options_description all;
  all.add(core).add(model_options());
  try {
    (void)echod::core_settings(echod::parse_settings(argc, argv.data(), all, true));
  } catch (const echod::UsageError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto split = input.find('\f');
  const std::string_view command_line = input.substr(0, split);
  std::vector<std::string> words{"echod"};
  for (std::size_t start = 0; start <= command_line.size();) {
    const auto end = std::min(command_line.find('\n', start), command_line.size());
    if (end > start) words.emplace_back(command_line.substr(start, end - start));
    start = end + 1;
  }

  echod::Fd ini;
  std::string ini_name;
  if (split != std::string_view::npos) {
    const std::string_view text = input.substr(split + 1);
    ini.reset(::memfd_create("echod-fuzz.conf", MFD_CLOEXEC));
    FUZZ_EXPECT(ini.valid());
    FUZZ_EXPECT(::write(ini.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ini_name = "/proc/self/fd/" + std::to_string(ini.get());
    words.push_back("--config=" + ini_name);
  }
  std::vector<const char*> argv;
  for (const auto& word : words)
    argv.push_back(word.c_str());

  // Any other file (a device, a FIFO, stdin) could block or be huge: leave such inputs out. Both
  // passes' option sets are asked, in case one resolves an abbreviation the other does not.
  const po::options_description core = echod::core_options();
  po::options_description all;
  all.add(core).add(model_options());
  const po::options_description* const both[] = {&core, &all};
  for (const po::options_description* options : both) {
    const std::string config = named_config(argv, *options);
    if (!config.empty() && config != ini_name) return 0;
  }
  both_passes(argv);
  return 0;
}
