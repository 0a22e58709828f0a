// Echo servers for echo-bench's tests, run on a thread of the test process: a correct one, one
// that corrupts the echo, one that never answers, and a listener that never accepts. Each listens
// on 127.0.0.1 at a port of its own; destruction stops the thread and closes every socket.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace echod::bench::test {

class TestServer {
 public:
  enum class Mode {
    kEcho,         // echoes every byte
    kCorrupt,      // echoes, but flips every `flip_every`-th byte it has received (all clients)
    kSilent,       // accepts and reads, never writes
    kNeverAccept,  // listens with the smallest backlog and never accepts
  };

  explicit TestServer(Mode mode, std::size_t flip_every = 1000);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string port_text() const { return std::to_string(port_); }
  // The addresses clients connected from so far.
  [[nodiscard]] std::set<std::string> peer_addresses() const;

 private:
  void serve();
  // Echoes (or swallows) what one client sent; false when the client is gone.
  bool serve_client(int fd);

  const Mode mode_;
  const std::size_t flip_every_;
  std::uint16_t port_ = 0;  // set by the constructor, before listener_ is initialised
  int listener_ = -1;
  std::size_t bytes_seen_ = 0;  // serve() thread only
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::set<std::string> peers_;  // guarded by mutex_
  std::thread thread_;
};

// A port on 127.0.0.1 where nothing listens (held bound, not listening, for the object's life),
// so a connect there is refused.
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  [[nodiscard]] std::string port_text() const { return std::to_string(port_); }

 private:
  std::uint16_t port_ = 0;  // set by the constructor, before fd_ is initialised
  int fd_ = -1;
};

}  // namespace echod::bench::test
