// Makes sure the process may open as many sockets as the run needs, before it starts.
#pragma once

#include <cstddef>

namespace echod::bench {

// Raises the soft RLIMIT_NOFILE towards the hard limit if needed; throws std::runtime_error
// saying how many descriptors are needed and allowed when even that is not enough.
void ensure_descriptor_limit(std::size_t needed);

}  // namespace echod::bench
