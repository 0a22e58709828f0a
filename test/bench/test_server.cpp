#include "test_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace echod::bench::test {
namespace {

constexpr int kPollMillis = 50;  // how fast the thread notices it should stop

// A TCP socket bound to 127.0.0.1 at a free port; throws on failure.
int bind_loopback(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error(std::string("bind 127.0.0.1:0: ") + std::strerror(error));
  }
  port = ntohs(address.sin_port);
  return fd;
}

bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t sent = ::send(fd, data, size, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data += sent;
    size -= static_cast<std::size_t>(sent);
  }
  return true;
}

}  // namespace

TestServer::TestServer(Mode mode, Behaviour behaviour)
    : mode_(mode), behaviour_(behaviour), listener_(bind_loopback(port_)) {
  // A backlog of 0 still lets one handshake complete; later SYNs are dropped, unanswered.
  if (::listen(listener_, mode == Mode::kNeverAccept ? 0 : 128) != 0) {
    const int error = errno;
    ::close(listener_);
    throw std::runtime_error(std::string("listen: ") + std::strerror(error));
  }
  if (mode != Mode::kNeverAccept) thread_ = std::thread([this] { serve(); });
}

TestServer::~TestServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(listener_);
}

std::set<std::string> TestServer::peer_addresses() const {
  std::lock_guard lock(mutex_);
  return peers_;
}

void TestServer::serve() {
  std::vector<pollfd> fds{{listener_, POLLIN, 0}};
  while (!stop_) {
    if (::poll(fds.data(), fds.size(), kPollMillis) <= 0) continue;
    for (std::size_t i = fds.size(); i-- > 1;) {
      if (fds[i].revents == 0) continue;
      if (!serve_client(i - 1)) {
        ::close(fds[i].fd);
        fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i));
        clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(i - 1));
      }
    }
    if (fds[0].revents & POLLIN) {
      sockaddr_in peer{};
      socklen_t length = sizeof peer;
      const int client =
          ::accept4(listener_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC);
      if (client >= 0) {
        char text[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
        std::lock_guard lock(mutex_);
        peers_.insert(text);
        fds.push_back({client, POLLIN, 0});
        clients_.push_back(Client{client, 0, {}});
      }
    }
  }
  for (std::size_t i = 1; i < fds.size(); ++i)
    ::close(fds[i].fd);
}

std::string TestServer::transform(Client& client, const char* data, std::size_t size) {
  const std::uint64_t from = client.received;
  client.received += size;
  const std::uint64_t at = behaviour_.at;
  const std::uint64_t end = at + behaviour_.length;
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    const std::uint64_t offset = from + i;
    char byte = data[i];
    switch (mode_) {
      case Mode::kCorrupt:
        if (++bytes_seen_ % at == 0) byte ^= 0x5A;
        out += byte;
        break;
      case Mode::kDropBlock:
        if (offset < at || offset >= end) out += byte;
        break;
      case Mode::kDuplicate:
        out += byte;
        if (offset >= at && offset < end) client.held += byte;
        if (offset + 1 == end) out += std::exchange(client.held, {});
        break;
      case Mode::kReorder:
        if (offset >= at && offset < end) {
          client.held += byte;  // the first block waits for the second
        } else {
          out += byte;
          if (offset + 1 == end + behaviour_.length) out += std::exchange(client.held, {});
        }
        break;
      case Mode::kTruncate:
        if (offset < at) out += byte;
        break;
      default:
        out += byte;
        break;
    }
  }
  return out;
}

bool TestServer::serve_client(std::size_t index) {
  Client& client = clients_[index];
  char buffer[16384];
  const ssize_t got = ::recv(client.fd, buffer, sizeof buffer, 0);
  if (got < 0) return errno == EINTR;
  if (got == 0) {
    if (mode_ == Mode::kExtraOnClose) send_all(client.fd, "!", 1);
    return false;
  }
  if (mode_ == Mode::kSilent) return true;
  const auto size = static_cast<std::size_t>(got);
  if (mode_ == Mode::kSlow) std::this_thread::sleep_for(behaviour_.delay);
  bytes_seen_ += mode_ == Mode::kCorrupt ? 0 : size;
  if (mode_ == Mode::kStallOnce && !stalled_ && bytes_seen_ >= behaviour_.at) {
    stalled_ = true;
    std::this_thread::sleep_for(behaviour_.delay);
  }
  const std::string out = transform(client, buffer, size);
  int to = client.fd;
  if (mode_ == Mode::kSwapClients && index > 0) to = clients_[index - 1].fd;
  if (!send_all(to, out.data(), out.size())) return false;
  return !(mode_ == Mode::kTruncate && client.received >= behaviour_.at);
}

ClosedPort::ClosedPort() : fd_(bind_loopback(port_)) {}

ClosedPort::~ClosedPort() {
  ::close(fd_);
}

}  // namespace echod::bench::test
