// The conformance suite's entry point: `conformance --model NAME [--echod PATH]
// [--echod-arg ARG]... [Catch2 arguments]`.
//
// Asks echod which capabilities the model declares (--describe-model) and excludes the cases
// tagged with a capability it lacks, e.g. ~[concurrent]. Catch2 2.13 ANDs separate test specs,
// so the exclusion also holds when ctest names one case; a case excluded that way matches
// nothing and the run fails (NoTests warning) instead of passing by skipping.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <csignal>
#include <iostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "echod_test.hpp"

// Defined in cases.cpp: the echod, model and capabilities every case runs against.
void set_conformance_target(std::string binary, std::string model,
                            std::vector<std::string> echod_args,
                            std::set<std::string> capabilities);

namespace {

// Every capability a case may be tagged with; see echod::Capability.
const char* const kCapabilityTags[] = {"concurrent", "forks", "multi-threaded"};

// Listed when the model cannot be described, so that test discovery registers a case that
// fails loudly instead of registering nothing (CatchAddTests ignores positive exit codes).
constexpr const char* kUnavailableCase = "model unavailable";

struct SuiteArgs {
  std::string model;
  std::string echod = ECHOD_BINARY;
  std::vector<std::string> echod_args;
  std::vector<char*> catch_argv;  // what is left for Catch2, argv[0] first
  bool listing = false;
};

// Takes out our own options (--model, --echod, --echod-arg, as "--x V" or "--x=V").
bool parse(int argc, char* argv[], SuiteArgs& args) {
  args.catch_argv.push_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    std::string* single = nullptr;
    std::string_view name;
    for (auto [option, target] : {std::pair{"--model", &args.model}, {"--echod", &args.echod}}) {
      if (arg == option || arg.rfind(std::string(option) + "=", 0) == 0) {
        single = target;
        name = option;
      }
    }
    const bool repeated = arg == "--echod-arg" || arg.rfind("--echod-arg=", 0) == 0;
    if (repeated) name = "--echod-arg";
    if (single == nullptr && !repeated) {
      if (arg == "--list-test-names-only" || arg == "--list-tests" || arg == "-l") {
        args.listing = true;
      }
      args.catch_argv.push_back(argv[i]);
      continue;
    }
    std::string value;
    if (arg.size() > name.size()) {
      value = std::string(arg.substr(name.size() + 1));
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "conformance: " << name << " needs a value\n";
      return false;
    }
    if (repeated) {
      args.echod_args.push_back(value);
    } else {
      *single = value;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char* argv[]) {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that closed must not kill the suite
  SuiteArgs args;
  if (!parse(argc, argv, args)) return 2;
  if (args.model.empty()) {
    std::cerr << "usage: conformance --model NAME [--echod PATH] [--echod-arg ARG]... "
                 "[Catch2 options]\n";
    return 2;
  }

  const echod::test::ModelDescription model =
      echod::test::describe_model(args.model, args.echod_args, args.echod);
  if (!model.error.empty()) {
    std::cerr << "conformance: cannot learn the capabilities of model '" << args.model
              << "': " << model.error << "\n";
    if (args.listing) std::cout << kUnavailableCase << "\n";
    return 1;
  }

  Catch::Session session;
  if (const int rc = session.applyCommandLine(static_cast<int>(args.catch_argv.size()),
                                              args.catch_argv.data());
      rc != 0) {
    return rc;
  }
  auto& config = session.configData();
  for (const char* tag : kCapabilityTags) {
    if (model.capabilities.count(tag) == 0)
      config.testsOrTags.push_back(std::string("~[") + tag + "]");
  }
  config.warnings =
      static_cast<Catch::WarnAbout::What>(config.warnings | Catch::WarnAbout::NoTests);

  set_conformance_target(args.echod, args.model, args.echod_args, model.capabilities);
  return session.run();
}
