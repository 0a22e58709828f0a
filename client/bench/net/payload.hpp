// Message contents: one pseudo-random stream per connection, a function of the connection's
// number and the byte's offset in that connection's stream. Nothing repeats within a stream
// (unlike a short pattern reused with wrap-around), so a dropped, duplicated or reordered block
// of any size is caught at the first byte it displaces, and another connection's bytes differ
// from this one's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace echod::bench {

// Appends bytes [stream_offset, stream_offset + size) of connection `connection`'s stream.
// Thread-safe (pure).
void append_payload(std::string& out, std::uint64_t connection, std::uint64_t stream_offset,
                    std::size_t size);

}  // namespace echod::bench
