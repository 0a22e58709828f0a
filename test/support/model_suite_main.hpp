// The main() of a suite registered once per model: include after <catch2/catch.hpp> in the one
// translation unit that defines CATCH_CONFIG_RUNNER (Catch::Session exists only there), then
//   int main(int argc, char* argv[]) { return echod::test::run_model_suite(argc, argv, "name"); }
#pragma once

#ifndef CATCH_CONFIG_RUNNER
#error "model_suite_main.hpp needs CATCH_CONFIG_RUNNER and <catch2/catch.hpp> included first"
#endif

#include "model_suite.hpp"

namespace echod::test {

inline int run_model_suite(int argc, char* argv[], const char* suite) {
  SuiteSetup setup = setup_model_suite(argc, argv, suite);
  if (setup.exit_code) return *setup.exit_code;
  Catch::Session session;
  if (const int rc = session.applyCommandLine(static_cast<int>(setup.catch_argv.size()),
                                              setup.catch_argv.data());
      rc != 0) {
    return rc;
  }
  auto& config = session.configData();
  config.testsOrTags.insert(config.testsOrTags.end(), setup.exclusions.begin(),
                            setup.exclusions.end());
  // A case the exclusions rule out matches nothing: fail instead of passing by skipping.
  config.warnings =
      static_cast<Catch::WarnAbout::What>(config.warnings | Catch::WarnAbout::NoTests);
  return session.run();
}

}  // namespace echod::test
