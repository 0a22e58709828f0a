#include "net/addresses.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "echod/fd.hpp"

namespace echod::bench {
namespace {

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

bool parse_ipv4(const std::string& text, std::uint32_t& host_order) {
  in_addr address{};
  if (::inet_pton(AF_INET, text.c_str(), &address) != 1) return false;
  host_order = ntohl(address.s_addr);
  return true;
}

SocketAddress ipv4_address(std::uint32_t host_order) {
  SocketAddress result;
  auto* in = reinterpret_cast<sockaddr_in*>(&result.storage);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(host_order);
  result.length = sizeof(sockaddr_in);
  return result;
}

SocketAddress single_address(const std::string& text) {
  std::uint32_t v4 = 0;
  if (parse_ipv4(text, v4)) return ipv4_address(v4);
  SocketAddress result;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
  if (::inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr) != 1) {
    throw std::invalid_argument("--source-ips: '" + text + "' is not an IP address");
  }
  in6->sin6_family = AF_INET6;
  result.length = sizeof(sockaddr_in6);
  return result;
}

}  // namespace

std::string SocketAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
  return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

std::vector<SocketAddress> resolve_targets(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int status = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); status != 0) {
    throw std::runtime_error("cannot resolve --host '" + host + "': " + ::gai_strerror(status));
  }
  std::vector<SocketAddress> result;
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    SocketAddress address;
    std::memcpy(&address.storage, entry->ai_addr, entry->ai_addrlen);
    address.length = entry->ai_addrlen;
    const bool seen = std::any_of(result.begin(), result.end(), [&](const SocketAddress& other) {
      return other.length == address.length &&
             std::memcmp(&other.storage, &address.storage, address.length) == 0;
    });
    if (!seen) result.push_back(address);
  }
  ::freeaddrinfo(found);
  return result;
}

const SocketAddress* first_accepting(const std::vector<SocketAddress>& candidates,
                                     double timeout_s) {
  const int timeout_ms = static_cast<int>(std::max(1.0, timeout_s * 1000));
  for (const SocketAddress& candidate : candidates) {
    echod::Fd probe(::socket(candidate.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!probe.valid()) continue;
    if (::connect(probe.get(), candidate.get(), candidate.length) == 0) return &candidate;
    if (errno != EINPROGRESS) continue;
    pollfd waiting{probe.get(), POLLOUT, 0};
    if (::poll(&waiting, 1, timeout_ms) != 1) continue;
    int error = 0;
    socklen_t length = sizeof error;
    if (::getsockopt(probe.get(), SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0) {
      return &candidate;
    }
  }
  return nullptr;
}

std::vector<SocketAddress> parse_source_addresses(const std::string& spec) {
  constexpr std::uint64_t kMaxRange = 65536;
  std::vector<SocketAddress> result;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string item = trim(spec.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) continue;
    const std::size_t dash = item.find('-');
    if (dash == std::string::npos) {
      result.push_back(single_address(item));
      continue;
    }
    std::uint32_t first = 0;
    std::uint32_t last = 0;
    if (!parse_ipv4(trim(item.substr(0, dash)), first) ||
        !parse_ipv4(trim(item.substr(dash + 1)), last)) {
      throw std::invalid_argument("--source-ips: '" + item +
                                  "' is not an IPv4 range like 127.0.0.1-127.0.0.20");
    }
    if (last < first || std::uint64_t{last} - first + 1 > kMaxRange) {
      throw std::invalid_argument("--source-ips: range '" + item +
                                  "' must go upwards and hold at most 65536 addresses");
    }
    for (std::uint64_t address = first; address <= last; ++address)
      result.push_back(ipv4_address(static_cast<std::uint32_t>(address)));
  }
  return result;
}

}  // namespace echod::bench
