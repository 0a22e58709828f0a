#include "test_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <utility>

namespace echod::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string error_text(int error) {
  return std::string(std::strerror(error));
}

std::string progress(std::size_t done, std::size_t total) {
  return std::to_string(done) + " of " + std::to_string(total) + " bytes";
}

// Waits for `events` on fd until the deadline. Returns revents, 0 on timeout, -1 on error.
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    pollfd pfd{fd, events, 0};
    const int rc = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left + 1, 60000)));
    if (rc > 0) return pfd.revents;
    if (rc < 0 && errno != EINTR) return -1;
  }
}

bool would_block(int error) {
  return error == EAGAIN || error == EWOULDBLOCK;
}

}  // namespace

TestClient::TestClient(TestClient&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

TestClient& TestClient::operator=(TestClient&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

TestClient::~TestClient() {
  close();
}

Outcome TestClient::connect(std::uint16_t port, const ConnectOptions& options) {
  close();
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (::inet_pton(AF_INET, options.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (::inet_pton(AF_INET6, options.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    return Outcome::failure("connect: '" + options.host + "' is not a numeric address");
  }
  const std::string where = options.host + ":" + std::to_string(port);

  fd_ = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Outcome::failure("socket: " + error_text(errno));
  // Buffer sizes must be set before connect: the window scale is fixed in the handshake.
  if (options.receive_buffer > 0 &&
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer, sizeof(int)) != 0) {
    return Outcome::failure("setsockopt(SO_RCVBUF): " + error_text(errno));
  }
  if (options.send_buffer > 0 &&
      ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &options.send_buffer, sizeof(int)) != 0) {
    return Outcome::failure("setsockopt(SO_SNDBUF): " + error_text(errno));
  }
  int on = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // small pings go out at once
  if (!options.source.empty()) {
    sockaddr_storage local{};
    auto* local_v4 = reinterpret_cast<sockaddr_in*>(&local);
    auto* local_v6 = reinterpret_cast<sockaddr_in6*>(&local);
    socklen_t local_length = 0;
    if (address.ss_family == AF_INET &&
        ::inet_pton(AF_INET, options.source.c_str(), &local_v4->sin_addr) == 1) {
      local_v4->sin_family = AF_INET;
      local_length = sizeof *local_v4;
    } else if (address.ss_family == AF_INET6 &&
               ::inet_pton(AF_INET6, options.source.c_str(), &local_v6->sin6_addr) == 1) {
      local_v6->sin6_family = AF_INET6;
      local_length = sizeof *local_v6;
    } else {
      close();
      return Outcome::failure("connect: source '" + options.source +
                              "' is not a numeric address of the same family as '" + options.host +
                              "'");
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), local_length) != 0) {
      const int error = errno;
      close();
      return Outcome::failure("bind to source " + options.source + ": " + error_text(error), error);
    }
  }

  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 && errno != EINPROGRESS) {
    const int error = errno;
    close();
    return Outcome::failure("connect to " + where + ": " + error_text(error), error);
  }
  const int revents = wait_for(fd_, POLLOUT, Clock::now() + options.timeout);
  if (revents <= 0) {
    close();
    return Outcome::failure("connect to " + where + ": no handshake within " +
                            std::to_string(options.timeout.count()) + " ms");
  }
  int error = 0;
  socklen_t size = sizeof error;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size);
  if (error != 0) {
    close();
    return Outcome::failure("connect to " + where + ": " + error_text(error), error);
  }
  return {};
}

Outcome TestClient::send_all(std::string_view data, Millis timeout) {
  if (fd_ < 0) return Outcome::failure("send_all: not connected");
  const auto deadline = Clock::now() + timeout;
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && !would_block(errno)) {
      return Outcome::failure("send_all: " + error_text(errno) + " after " +
                              progress(sent, data.size()));
    }
    if (wait_for(fd_, POLLOUT, deadline) == 0) {
      return Outcome::failure("send_all: timed out after " + std::to_string(timeout.count()) +
                              " ms with " + progress(sent, data.size()) + " sent");
    }
  }
  return {};
}

std::ptrdiff_t TestClient::try_send(std::string_view data) {
  for (;;) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (would_block(errno)) return 0;
    return -1;
  }
}

Received TestClient::recv_exact(std::size_t size, Millis timeout) {
  Received result;
  if (fd_ < 0) return {Outcome::failure("recv_exact: not connected"), {}};
  const auto deadline = Clock::now() + timeout;
  result.data.resize(size);
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::recv(fd_, result.data.data() + got, size - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || !would_block(errno)) {
      result.error_number = n == 0 ? 0 : errno;
      result.error = "recv_exact: " + (n == 0 ? std::string("EOF") : error_text(errno)) +
                     " after " + progress(got, size);
      break;
    }
    if (wait_for(fd_, POLLIN, deadline) == 0) {
      result.error = "recv_exact: timed out after " + std::to_string(timeout.count()) +
                     " ms with " + progress(got, size) + " received";
      break;
    }
  }
  result.data.resize(got);
  return result;
}

Received TestClient::recv_until_eof(Millis timeout, std::size_t limit) {
  Received result;
  if (fd_ < 0) return {Outcome::failure("recv_until_eof: not connected"), {}};
  const auto deadline = Clock::now() + timeout;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n > 0) {
      result.data.append(buffer, static_cast<std::size_t>(n));
      if (result.data.size() > limit) {
        result.error = "recv_until_eof: more than " + std::to_string(limit) + " bytes";
        return result;
      }
      continue;
    }
    if (n == 0) return result;
    if (errno == EINTR) continue;
    if (!would_block(errno)) {
      result.error_number = errno;
      result.error = "recv_until_eof: " + error_text(errno) + " after " +
                     std::to_string(result.data.size()) + " bytes";
      return result;
    }
    if (wait_for(fd_, POLLIN, deadline) == 0) {
      result.error = "recv_until_eof: no EOF within " + std::to_string(timeout.count()) + " ms (" +
                     std::to_string(result.data.size()) + " bytes received)";
      return result;
    }
  }
}

Outcome TestClient::echo(std::string_view data, Millis timeout) {
  if (fd_ < 0) return Outcome::failure("echo: not connected");
  const auto deadline = Clock::now() + timeout;
  std::string echoed(std::min<std::size_t>(data.size(), 65536), '\0');
  std::size_t sent = 0;
  std::size_t received = 0;
  while (received < data.size()) {
    const short events = static_cast<short>(POLLIN | (sent < data.size() ? POLLOUT : 0));
    const int revents = wait_for(fd_, events, deadline);
    if (revents == 0) {
      return Outcome::failure("echo: timed out after " + std::to_string(timeout.count()) +
                              " ms; sent " + progress(sent, data.size()) + ", received " +
                              progress(received, data.size()));
    }
    if (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EINTR && !would_block(errno)) {
        return Outcome::failure("echo: send: " + error_text(errno) + " after " +
                                progress(sent, data.size()));
      }
    }
    const std::size_t want = std::min(echoed.size(), data.size() - received);
    const ssize_t n = ::recv(fd_, echoed.data(), want, 0);
    if (n > 0) {
      const auto size = static_cast<std::size_t>(n);
      if (Outcome same =
              same_bytes(std::string_view(echoed.data(), size), data.substr(received, size));
          !same) {
        return Outcome::failure("echo: at offset " + std::to_string(received) + ": " + same.error);
      }
      received += size;
    } else if (n == 0) {
      return Outcome::failure("echo: EOF after " + progress(received, data.size()) + " echoed (" +
                              std::to_string(sent) + " sent)");
    } else if (errno != EINTR && !would_block(errno)) {
      return Outcome::failure("echo: recv: " + error_text(errno) + " after " +
                              progress(received, data.size()) + " echoed");
    }
  }
  return {};
}

Outcome TestClient::shutdown_write() {
  if (fd_ < 0) return Outcome::failure("shutdown_write: not connected");
  if (::shutdown(fd_, SHUT_WR) != 0) return Outcome::failure("shutdown: " + error_text(errno));
  return {};
}

void TestClient::reset() {
  if (fd_ < 0) return;
  const linger abort{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
  close();
}

void TestClient::close() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

Outcome TestClient::is_closed_by_peer(Millis timeout) {
  if (fd_ < 0) return Outcome::failure("is_closed_by_peer: not connected");
  const auto deadline = Clock::now() + timeout;
  char buffer[65536];
  std::size_t discarded = 0;
  for (;;) {
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n == 0) return {};
    if (n > 0) {
      discarded += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == ECONNRESET || errno == EPIPE) return {};
    if (!would_block(errno)) return Outcome::failure("is_closed_by_peer: " + error_text(errno));
    if (wait_for(fd_, POLLIN, deadline) == 0) {
      return Outcome::failure("the connection is still open after " +
                              std::to_string(timeout.count()) + " ms (" +
                              std::to_string(discarded) + " bytes discarded meanwhile)");
    }
  }
}

TestClient connect_client(std::uint16_t port, const ConnectOptions& options) {
  TestClient client;
  REQUIRE(client.connect(port, options));
  return client;
}

}  // namespace echod::test
