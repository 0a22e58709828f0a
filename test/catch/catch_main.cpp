// main() for test binaries that are plain Catch2 suites. In its own object so that a binary
// defining its own main() never pulls it out of the archive.
#include "catch_session.hpp"

int main(int argc, char* argv[]) {
  return echod::test::run_catch_session(argc, argv);
}
