// The one compiled copy of Catch2's implementation, shared by every test binary (see
// test/CMakeLists.txt). Test files include <catch2/catch.hpp> without CATCH_CONFIG_MAIN and link
// echod_catch_main for Catch2's own main(), or echod_catch to write their own.
#pragma once

#include <string>
#include <vector>

namespace echod::test {

// Runs the test cases linked into this binary with Catch2's command line `argv`, restricted
// further by `extra_specs` (test specs such as "~[tag]", as if appended to the command line).
// With `fail_if_nothing_runs`, a run in which no case matches fails instead of passing.
[[nodiscard]] int run_catch_session(int argc, char* argv[],
                                    const std::vector<std::string>& extra_specs = {},
                                    bool fail_if_nothing_runs = false);

}  // namespace echod::test
