#include "systemd.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace echod {
namespace {

std::runtime_error passed_socket_error(int fd, const std::string& reason) {
  return std::runtime_error("socket activation: descriptor " + std::to_string(fd) + " " + reason);
}

int socket_option(int fd, int name) {
  int value = 0;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, name, &value, &length) != 0) {
    throw passed_socket_error(fd, std::string("is not a socket: ") + std::strerror(errno));
  }
  return value;
}

}  // namespace

std::optional<Listener> inherited_listener() {
  const int count = ::sd_listen_fds(/*unset_environment=*/1);
  if (count < 0) {
    throw std::runtime_error(std::string("socket activation: ") + std::strerror(-count));
  }
  if (count == 0) return std::nullopt;
  if (count > 1) {
    throw std::runtime_error("socket activation: " + std::to_string(count) +
                             " sockets passed; echod serves one (one ListenStream= per socket "
                             "unit, or one echod@ instance per socket)");
  }
  const int fd = SD_LISTEN_FDS_START;
  const int domain = socket_option(fd, SO_DOMAIN);
  if (domain != AF_INET && domain != AF_INET6) {
    throw passed_socket_error(fd, "is not a TCP socket (ListenStream= takes an address:port)");
  }
  if (socket_option(fd, SO_TYPE) != SOCK_STREAM) {
    throw passed_socket_error(fd, "is not a stream socket (use ListenStream=)");
  }
  if (socket_option(fd, SO_ACCEPTCONN) == 0) {
    throw passed_socket_error(fd, "is not listening (Accept=no is required)");
  }
  const int status = ::fcntl(fd, F_GETFL);
  if (status < 0 || ::fcntl(fd, F_SETFL, status | O_NONBLOCK) != 0 ||
      ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    throw passed_socket_error(fd,
                              std::string("cannot be set nonblocking: ") + std::strerror(errno));
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  return Listener{Fd(fd), format_address(bound)};
}

bool service_manager_listening() {
  static const bool listening = std::getenv("NOTIFY_SOCKET") != nullptr;
  return listening;
}

bool notify_service_manager(const std::string& state) {
  if (!service_manager_listening()) return false;
  return ::sd_notify(/*unset_environment=*/0, state.c_str()) > 0;
}

}  // namespace echod
