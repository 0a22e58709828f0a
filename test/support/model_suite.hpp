// A black-box suite registered once per model (test/conformance, test/endpoint): its entry point
// and the echod every case runs against.
//
//   SUITE --model NAME [--echod PATH] [--echod-arg ARG]... [Catch2 arguments]
//
// run_model_suite asks echod which capabilities the model declares
// (--describe-model) and excludes the cases tagged with a capability it lacks, e.g. ~[concurrent].
// Catch2 2.13 ANDs separate test specs, so the exclusion also holds when ctest names one case; a
// case excluded that way matches nothing and the run fails (NoTests warning) instead of passing by
// skipping.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "echod_process.hpp"

namespace echod::test {

// What the suite runs against. Set once by run_model_suite before any case runs; read-only after.
struct SuiteTarget {
  std::string binary;
  std::string model;
  std::vector<std::string> echod_args;  // from --echod-arg, passed to every echod started
  std::set<std::string> capabilities;   // "concurrent", "event-driven", "forks", "multi-threaded"
};

[[nodiscard]] const SuiteTarget& suite_target();
[[nodiscard]] bool has_capability(const std::string& name);

// A suite's whole main(): parses the suite's own options, describes the model, sets
// suite_target() and runs Catch2 with the cases the model's capabilities rule out excluded.
//   int main(int argc, char* argv[]) { return echod::test::run_model_suite(argc, argv, "name"); }
[[nodiscard]] int run_model_suite(int argc, char* argv[], const char* suite);

// echod --model X [--echod-arg ...] [more]; it listens on 127.0.0.1 and a free port.
[[nodiscard]] EchodProcess start_echod(const std::vector<std::string>& more = {});

// The same, under `prlimit --nofile=LIMIT`: echod may open at most `limit` descriptors.
[[nodiscard]] EchodProcess start_echod_with_descriptor_limit(
    int limit, const std::vector<std::string>& more = {});

}  // namespace echod::test
