#include "outcome.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace echod::test {

Outcome same_bytes(std::string_view got, std::string_view expected) {
  const std::size_t common = std::min(got.size(), expected.size());
  std::size_t at = 0;
  // memcmp in blocks first: comparing 16 MiB byte by byte in a loop is needlessly slow.
  constexpr std::size_t kBlock = 4096;
  while (at + kBlock <= common && std::memcmp(got.data() + at, expected.data() + at, kBlock) == 0) {
    at += kBlock;
  }
  while (at < common && got[at] == expected[at])
    ++at;
  if (at == common && got.size() == expected.size()) return {};
  char text[160];
  if (at < common) {
    std::snprintf(text, sizeof text, "byte %zu of %zu differs: got 0x%02x, expected 0x%02x", at,
                  expected.size(), static_cast<unsigned char>(got[at]),
                  static_cast<unsigned char>(expected[at]));
  } else {
    std::snprintf(text, sizeof text, "got %zu bytes, expected %zu (the common prefix matches)",
                  got.size(), expected.size());
  }
  return Outcome::failure(text);
}

std::uint64_t Rng::next() noexcept {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::size_t Rng::between(std::size_t low, std::size_t high) noexcept {
  return low + static_cast<std::size_t>(next() % (high - low + 1));
}

std::string Rng::bytes(std::size_t size) {
  std::string out(size, '\0');
  std::size_t at = 0;
  while (at < size) {
    std::uint64_t word = next();
    for (int i = 0; i < 8 && at < size; ++i, word >>= 8) {
      out[at++] = static_cast<char>(word & 0xff);  // byte order fixed, not the host's
    }
  }
  return out;
}

std::string random_bytes(std::size_t size, std::uint64_t seed) {
  return Rng(seed).bytes(size);
}

}  // namespace echod::test
