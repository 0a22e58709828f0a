// Listening sockets are opened by core, never by models.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "echod/fd.hpp"

namespace echod {

struct Listener {
  Fd fd;
  std::string address;  // "127.0.0.1:7777" or "[::1]:7777", the port as bound
};

// Binds and listens on host:port (port 0 picks a free port). The socket is nonblocking and
// close-on-exec, with SO_REUSEADDR so a restart does not wait out TIME_WAIT.
// Throws std::runtime_error with a one-line reason ("cannot listen on 127.0.0.1:80: ...").
Listener open_listener(const std::string& host, std::uint16_t port, int backlog);

// For a model with kCapReusePort: `count` listeners on one address, each with SO_REUSEPORT as
// well, the first bound as open_listener binds, the others to the address and port it got (so
// port 0 works), in that order: the kernel's reuseport group numbers them 0..count-1, which is
// what SO_ATTACH_REUSEPORT_CBPF selects by. Throws like open_listener; none stays open then.
std::vector<Listener> open_reuseport_listeners(const std::string& host, std::uint16_t port,
                                               int backlog, std::size_t count);

// "127.0.0.1:7777" or "[::1]:7777" for a bound address.
std::string format_address(const sockaddr_storage& address);

}  // namespace echod
