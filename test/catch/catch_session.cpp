// Catch2 v2 is a single header whose implementation takes about 25 s to compile; it is compiled
// here once instead of in every test binary (it was half of the whole build's compile time).
#define CATCH_CONFIG_RUNNER
#include "catch_session.hpp"

#include <catch2/catch.hpp>

namespace echod::test {

int run_catch_session(int argc, char* argv[], const std::vector<std::string>& extra_specs,
                      bool fail_if_nothing_runs) {
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  auto& config = session.configData();
  config.testsOrTags.insert(config.testsOrTags.end(), extra_specs.begin(), extra_specs.end());
  if (fail_if_nothing_runs) {
    config.warnings =
        static_cast<Catch::WarnAbout::What>(config.warnings | Catch::WarnAbout::NoTests);
  }
  return session.run();
}

}  // namespace echod::test
