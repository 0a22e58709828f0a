#include "listener.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace echod {

std::string format_address(const sockaddr_storage& address) {
  char host[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    ::inet_ntop(AF_INET6, &v6.sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(v6.sin6_port));
  }
  const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
  ::inet_ntop(AF_INET, &v4.sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(v4.sin_port));
}

namespace {

// One listening socket on `address`; an invalid Fd with errno set if any step failed.
Fd listen_on(const sockaddr* address, socklen_t length, int backlog, bool reuse_port) {
  Fd fd(::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  int on = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if ((reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) ||
      ::bind(fd.get(), address, length) != 0 || ::listen(fd.get(), backlog) != 0) {
    const int error = errno;
    fd.reset();
    errno = error;
  }
  return fd;
}

std::vector<Listener> open_group(const std::string& host, std::uint16_t port, int backlog,
                                 std::size_t count, bool reuse_port) {
  const std::string where =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error("cannot listen on " + where + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);

  int last_error = 0;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    Fd fd = listen_on(ai->ai_addr, ai->ai_addrlen, backlog, reuse_port);
    if (!fd) {
      last_error = errno;
      continue;
    }
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &length);
    std::vector<Listener> group;
    group.push_back(Listener{std::move(fd), format_address(bound)});
    // The rest join the first one's group on the port it got.
    while (group.size() < count) {
      Fd next = listen_on(reinterpret_cast<const sockaddr*>(&bound), length, backlog, true);
      if (!next) {
        throw std::runtime_error("cannot open listener " + std::to_string(group.size() + 1) +
                                 " of " + std::to_string(count) + " on " + group.front().address +
                                 ": " + std::strerror(errno));
      }
      group.push_back(Listener{std::move(next), group.front().address});
    }
    return group;
  }
  std::string reason = std::strerror(last_error);
  if (last_error == EADDRINUSE) reason += " (is another server on this port?)";
  throw std::runtime_error("cannot listen on " + where + ": " + reason);
}

}  // namespace

Listener open_listener(const std::string& host, std::uint16_t port, int backlog) {
  return std::move(open_group(host, port, backlog, 1, false).front());
}

std::vector<Listener> open_reuseport_listeners(const std::string& host, std::uint16_t port,
                                               int backlog, std::size_t count) {
  return open_group(host, port, backlog, count, true);
}

}  // namespace echod
