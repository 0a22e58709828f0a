// Listening sockets are opened by core, never by models.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

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

// "127.0.0.1:7777" or "[::1]:7777" for a bound address.
std::string format_address(const sockaddr_storage& address);

}  // namespace echod
