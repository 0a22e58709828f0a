// The one entry point every fuzz target defines: libFuzzer's, so the same body runs under
// libFuzzer (clang, -DECHOD_FUZZ=ON) and under replay_main.cpp (any compiler, ctest label fuzz).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

// A failed expectation inside a fuzz body: print it and abort, which libFuzzer reports as a
// crash (saving the input) and the replay driver as a failed test.
#define FUZZ_EXPECT(condition)                                                                 \
  do {                                                                                         \
    if (!(condition)) {                                                                        \
      std::fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (false)
