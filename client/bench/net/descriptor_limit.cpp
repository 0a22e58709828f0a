#include "net/descriptor_limit.hpp"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace echod::bench {

void ensure_descriptor_limit(std::size_t needed) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;  // nothing to learn; let the run tell
  if (limit.rlim_cur >= needed) return;
  if (limit.rlim_max >= needed) {
    limit.rlim_cur = needed;
    if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) return;
  }
  throw std::runtime_error("this run needs " + std::to_string(needed) +
                           " file descriptors but the limit is " + std::to_string(limit.rlim_cur) +
                           " (hard " + std::to_string(limit.rlim_max) +
                           "): use fewer connections, or raise ulimit -n");
}

}  // namespace echod::bench
