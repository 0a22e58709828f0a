// The hostile-client suite's entry point: `hostile --model NAME [--echod PATH]
// [--echod-arg ARG]... [Catch2 arguments]` (see model_suite.hpp).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "model_suite_main.hpp"

int main(int argc, char* argv[]) {
  return echod::test::run_model_suite(argc, argv, "hostile");
}
