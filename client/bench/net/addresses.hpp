// Socket addresses: the server to measure and the local addresses to connect from.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <vector>

namespace echod::bench {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  [[nodiscard]] const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  [[nodiscard]] int family() const { return storage.ss_family; }
  [[nodiscard]] std::string to_string() const;  // "127.0.0.1:7777", "[::1]:7777"
};

// Every address host (numeric or a name) and port resolve to, in getaddrinfo's order; throws
// std::runtime_error naming the host.
std::vector<SocketAddress> resolve_targets(const std::string& host, std::uint16_t port);

// The first of `candidates` that accepts a TCP connection within `timeout_s` (each tried in
// turn, with a blocking connect that is closed at once), or nullptr when none does.
const SocketAddress* first_accepting(const std::vector<SocketAddress>& candidates,
                                     double timeout_s);

// Parses "127.0.0.1-127.0.0.20,127.0.1.1,::1" into addresses with port 0, in order. IPv4 ranges
// may span octets; a range is capped at 65536 addresses. Throws std::invalid_argument.
std::vector<SocketAddress> parse_source_addresses(const std::string& spec);

}  // namespace echod::bench
