// Message contents. Every message is a different slice of one pseudo-random pattern, chosen by
// its connection and sequence number, so a server that echoes stale, reordered or another
// connection's bytes is caught, not only one that flips bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace echod::bench {

// Appends `size` bytes of message `sequence` on connection `connection` to `out`.
// Thread-safe: the pattern is built once and only read afterwards.
void append_payload(std::string& out, std::uint64_t connection, std::uint64_t sequence,
                    std::size_t size);

}  // namespace echod::bench
