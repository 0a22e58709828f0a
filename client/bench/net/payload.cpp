#include "net/payload.hpp"

#include <algorithm>
#include <cstring>

namespace echod::bench {
namespace {

// splitmix64's finaliser: a bijection on 64-bit words, so distinct block numbers of one stream
// give distinct words.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

}  // namespace

void append_payload(std::string& out, std::uint64_t connection, std::uint64_t stream_offset,
                    std::size_t size) {
  // Each connection's stream is the mixed sequence of 8-byte blocks numbered from its own
  // starting point, far apart for different connections.
  const std::uint64_t base = mix(connection + 0x9E3779B97F4A7C15ull) << 20;
  const std::size_t old_size = out.size();
  out.resize(old_size + size);
  char* dest = out.data() + old_size;
  std::uint64_t block = stream_offset / 8;
  std::size_t skip = static_cast<std::size_t>(stream_offset % 8);
  while (size > 0) {
    const std::uint64_t word = mix(base + block++);
    char bytes[8];
    std::memcpy(bytes, &word, sizeof bytes);
    const std::size_t take = std::min(size, sizeof bytes - skip);
    std::memcpy(dest, bytes + skip, take);
    dest += take;
    size -= take;
    skip = 0;
  }
}

}  // namespace echod::bench
