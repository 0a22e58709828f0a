#include "model_suite.hpp"

#include "catch_session.hpp"

#include <csignal>
#include <iostream>
#include <string_view>
#include <utility>

namespace echod::test {
namespace {

// Every capability a case may be tagged with; see echod::Capability.
const char* const kCapabilityTags[] = {"concurrent", "event-driven", "forks", "multi-threaded"};

// Listed when the model cannot be described, so that test discovery registers a case that
// fails loudly instead of registering nothing (CatchAddTests ignores positive exit codes).
constexpr const char* kUnavailableCase = "model unavailable";

SuiteTarget& mutable_target() {
  static SuiteTarget instance{ECHOD_BINARY, {}, {}, {}};
  return instance;
}

// What run_model_suite does before running Catch2.
struct SuiteSetup {
  std::optional<int> exit_code;         // set: exit with it now (bad usage, model unavailable)
  std::vector<char*> catch_argv;        // the arguments left for Catch2, argv[0] first
  std::vector<std::string> exclusions;  // "~[tag]" for each capability the model lacks
};

struct SuiteArgs {
  std::string model;
  std::string echod = ECHOD_BINARY;
  std::vector<std::string> echod_args;
  std::vector<char*> catch_argv;  // what is left for Catch2, argv[0] first
  bool listing = false;
};

// Takes out our own options (--model, --echod, --echod-arg, as "--x V" or "--x=V").
bool parse(int argc, char* argv[], SuiteArgs& args, const char* suite) {
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
      std::cerr << suite << ": " << name << " needs a value\n";
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

EchodProcess start_with(std::string binary, std::vector<std::string> args) {
  EchodProcess::Options options;
  options.binary = std::move(binary);
  return EchodProcess(std::move(args), options);
}

SuiteSetup setup_model_suite(int argc, char* argv[], const char* suite) {
  std::signal(SIGPIPE, SIG_IGN);  // a peer that closed must not kill the suite
  SuiteSetup setup;
  SuiteArgs args;
  if (!parse(argc, argv, args, suite)) {
    setup.exit_code = 2;
    return setup;
  }
  if (args.model.empty()) {
    std::cerr << "usage: " << suite
              << " --model NAME [--echod PATH] [--echod-arg ARG]... [Catch2 options]\n";
    setup.exit_code = 2;
    return setup;
  }

  const ModelDescription model = describe_model(args.model, args.echod_args, args.echod);
  if (!model.error.empty()) {
    std::cerr << suite << ": cannot learn the capabilities of model '" << args.model
              << "': " << model.error << "\n";
    if (args.listing) std::cout << kUnavailableCase << "\n";
    setup.exit_code = 1;
    return setup;
  }
  for (const char* tag : kCapabilityTags) {
    if (model.capabilities.count(tag) == 0)
      setup.exclusions.push_back(std::string("~[") + tag + "]");
  }
  setup.catch_argv = std::move(args.catch_argv);
  mutable_target() =
      SuiteTarget{args.echod, args.model, std::move(args.echod_args), model.capabilities};
  return setup;
}

}  // namespace

const SuiteTarget& suite_target() {
  return mutable_target();
}

bool has_capability(const std::string& name) {
  return suite_target().capabilities.count(name) != 0;
}

int run_model_suite(int argc, char* argv[], const char* suite) {
  SuiteSetup setup = setup_model_suite(argc, argv, suite);
  if (setup.exit_code) return *setup.exit_code;
  // A case the exclusions rule out matches nothing: fail instead of passing by skipping.
  return run_catch_session(static_cast<int>(setup.catch_argv.size()), setup.catch_argv.data(),
                           setup.exclusions, /*fail_if_nothing_runs=*/true);
}

EchodProcess start_echod(const std::vector<std::string>& more) {
  const SuiteTarget& target = suite_target();
  std::vector<std::string> args{"--model", target.model};
  args.insert(args.end(), target.echod_args.begin(), target.echod_args.end());
  args.insert(args.end(), more.begin(), more.end());
  return start_with(target.binary, std::move(args));
}

EchodProcess start_echod_with_descriptor_limit(int limit, const std::vector<std::string>& more) {
  const SuiteTarget& target = suite_target();
  std::vector<std::string> args{"--nofile=" + std::to_string(limit), target.binary, "--model",
                                target.model};
  args.insert(args.end(), target.echod_args.begin(), target.echod_args.end());
  args.insert(args.end(), more.begin(), more.end());
  // util-linux; it execs echod, keeping the pid
  return start_with("/usr/bin/prlimit", std::move(args));
}

}  // namespace echod::test
