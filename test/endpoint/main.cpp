// The endpoint suite's entry point: `endpoint --model NAME [--echod PATH] [--echod-arg ARG]...
// [Catch2 arguments]` (see model_suite.hpp).
#include "model_suite.hpp"

int main(int argc, char* argv[]) {
  return echod::test::run_model_suite(argc, argv, "endpoint");
}
