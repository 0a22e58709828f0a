// Command-line cases that need a live socket beside echod, which expect.cmake cannot hold.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "echod_test.hpp"

using echod::test::run_echod;

namespace {

// A listening TCP socket on 127.0.0.1 and a port the kernel picked; closed on destruction.
class HeldPort {
 public:
  HeldPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  ~HeldPort() { ::close(fd_); }

  [[nodiscard]] std::string port() const { return std::to_string(port_); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST_CASE("port in use") {
  const HeldPort held;
  const auto result = run_echod({"--model=epoll", "--bind=127.0.0.1", "--port=" + held.port()});
  INFO("stderr: " << result.err);
  REQUIRE(result.exit_status == 1);
  const std::string expected = "cannot listen on 127.0.0.1:" + held.port() +
                               ": Address already in use (is another server on this port?)";
  REQUIRE(result.err.find(expected) != std::string::npos);
  REQUIRE(result.err.find("listening on") == std::string::npos);
}
