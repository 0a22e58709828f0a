// A TCP client for black-box tests in which every blocking call has a deadline.
//
// The socket is nonblocking and close-on-exec; each call waits in poll() until its own timeout
// at most, then returns an Outcome saying what happened ("recv_exact: timed out after 5000 ms
// with 12 of 100 bytes"). Nothing here asserts, so clients may run on worker threads; check the
// Outcome on the test thread: REQUIRE(client.send_all(data)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "outcome.hpp"

namespace echod::test {

struct ConnectOptions {
  std::string host = "127.0.0.1";  // numeric IPv4 or IPv6 address
  int receive_buffer = 0;          // SO_RCVBUF set before connecting (0: kernel default);
                                   // small values advertise a small window: a lagging reader
  int send_buffer = 0;             // SO_SNDBUF set before connecting (0: kernel default)
  Millis timeout = kDefaultTimeout;
  std::string source;  // local address to bind before connecting, e.g. 127.0.0.2 (a second
                       // client address on loopback); empty: any
};

// One connection. Move-only; closes on destruction. One thread may send while another
// receives on the same client; otherwise it belongs to one thread.
class TestClient {
 public:
  TestClient() = default;
  TestClient(TestClient&& other) noexcept;
  TestClient& operator=(TestClient&& other) noexcept;
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;
  ~TestClient();

  // Connects to host:port; the handshake must complete within options.timeout. On failure the
  // Outcome's error_number says why (ECONNREFUSED: nothing listens).
  Outcome connect(std::uint16_t port, const ConnectOptions& options = {});

  // Sends every byte of `data` before the timeout, or says how far it got.
  Outcome send_all(std::string_view data, Millis timeout = kDefaultTimeout);
  // One nonblocking send: bytes the kernel took (0 if the socket buffer is full), or -1 with
  // errno set on an error.
  std::ptrdiff_t try_send(std::string_view data);

  // Exactly `size` bytes; fails on timeout, EOF or reset (with the bytes that did arrive; the
  // error_number is ECONNRESET for a reset).
  Received recv_exact(std::size_t size, Millis timeout = kDefaultTimeout);
  // Everything until the peer's EOF; fails on timeout, reset (error_number ECONNRESET), or past
  // `limit` bytes.
  Received recv_until_eof(Millis timeout = kDefaultTimeout, std::size_t limit = 256u << 20);

  // Sends `data` while reading its echo at the same time (so payloads larger than all the
  // socket buffers cannot deadlock), then checks the echo is identical.
  Outcome echo(std::string_view data, Millis timeout = kDefaultTimeout);

  // Shuts down the sending side (the peer reads EOF); receiving goes on.
  Outcome shutdown_write();
  // Aborts the connection: SO_LINGER {1, 0} then close, so the peer gets RST, not FIN.
  void reset();
  // Closes normally (FIN). Also done by the destructor.
  void close();

  // Waits until the peer closes the connection (EOF or reset), discarding whatever arrives
  // first; fails if it is still open after `timeout`.
  Outcome is_closed_by_peer(Millis timeout = kDefaultTimeout);

  [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
  [[nodiscard]] int fd() const noexcept { return fd_; }  // for setsockopt and the like

 private:
  int fd_ = -1;
};

// Connects to 127.0.0.1:port and REQUIREs success. Test thread only.
[[nodiscard]] TestClient connect_client(std::uint16_t port, const ConnectOptions& options = {});

}  // namespace echod::test
