// The soak suite's entry point: `soak --model NAME [--echod PATH] [--echod-arg ARG]...
// [Catch2 arguments]` (see model_suite.hpp); ECHOD_SOAK_SECONDS sets the hold's length.
#include "model_suite.hpp"

int main(int argc, char* argv[]) {
  return echod::test::run_model_suite(argc, argv, "soak");
}
