#include "payload.hpp"

#include <algorithm>
#include <array>

namespace echod::bench {
namespace {

constexpr std::size_t kPatternSize = 65536;  // a power of two, and larger than any socket read

const std::array<char, kPatternSize>& pattern() {
  static const auto bytes = [] {
    std::array<char, kPatternSize> result{};
    std::uint64_t state = 0x9E3779B97F4A7C15ull;  // fixed seed: runs are reproducible
    for (char& byte : result) {
      state ^= state << 13;  // xorshift64
      state ^= state >> 7;
      state ^= state << 17;
      byte = static_cast<char>(state >> 56);
    }
    return result;
  }();
  return bytes;
}

}  // namespace

void append_payload(std::string& out, std::uint64_t connection, std::uint64_t sequence,
                    std::size_t size) {
  const auto& bytes = pattern();
  // Mix both numbers into a starting offset (splitmix64 finaliser), then copy with wrap-around.
  std::uint64_t mixed = connection * 0xBF58476D1CE4E5B9ull + sequence * 0x94D049BB133111EBull;
  mixed ^= mixed >> 31;
  std::size_t offset = static_cast<std::size_t>(mixed) & (kPatternSize - 1);
  while (size > 0) {
    const std::size_t chunk = std::min(size, kPatternSize - offset);
    out.append(bytes.data() + offset, chunk);
    size -= chunk;
    offset = 0;
  }
}

}  // namespace echod::bench
