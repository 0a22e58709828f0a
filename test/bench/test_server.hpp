// Echo servers for echo-bench's tests, run on a thread of the test process: a correct one, and
// ones that misbehave in the ways echo-bench must catch or account for (corrupt, drop, duplicate,
// reorder, truncate, swap bytes between connections, add bytes at close, answer slowly, stall,
// never answer, never accept). Each listens on 127.0.0.1 at a port of its own; destruction stops
// the thread and closes every socket. One thread serves every client in turn, so a server that
// sleeps (kSlow, kStallOnce) delays all of them, like a server whose core is busy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace echod::bench::test {

// Where a misbehaving TestServer misbehaves: stream offsets, a block length, a delay.
struct ServerBehaviour {
  std::uint64_t at = 1000;
  std::uint64_t length = 0;
  std::chrono::milliseconds delay{0};
};

class TestServer {
 public:
  enum class Mode {
    kEcho,          // echoes every byte
    kCorrupt,       // flips every `at`-th byte it has received (all clients together)
    kDropBlock,     // drops bytes [at, at + length) of each client's stream, echoes the rest
    kDuplicate,     // sends bytes [at, at + length) of each client's stream twice
    kReorder,       // swaps blocks [at, at + length) and [at + length, at + 2 * length)
    kTruncate,      // echoes a client's first `at` bytes, then closes it
    kSwapClients,   // sends what one client sent to the client accepted before it (first: own)
    kExtraOnClose,  // echoes; when the client half-closes, sends one more byte, then closes
    kSlow,          // sleeps `delay` before echoing each read
    kStallOnce,     // echoes, but once `at` bytes have come in (all clients) sleeps `delay`
    kSilent,        // accepts and reads, never writes
    kNeverAccept,   // listens with the smallest backlog and never accepts
  };

  using Behaviour = ServerBehaviour;

  explicit TestServer(Mode mode, Behaviour behaviour = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string port_text() const { return std::to_string(port_); }
  // The addresses clients connected from so far.
  [[nodiscard]] std::set<std::string> peer_addresses() const;

 private:
  struct Client {
    int fd = -1;
    std::uint64_t received = 0;  // stream offset of the next byte from this client
    std::string held;            // kReorder: the first block, sent after the second
  };

  void serve();
  // Echoes (or swallows) what client `index` sent; false when the client is gone.
  bool serve_client(std::size_t index);
  // What to send for bytes [offset, offset + size) of a client's stream.
  std::string transform(Client& client, const char* data, std::size_t size);

  const Mode mode_;
  const Behaviour behaviour_;
  std::uint16_t port_ = 0;  // set by the constructor, before listener_ is initialised
  int listener_ = -1;
  std::uint64_t bytes_seen_ = 0;  // serve() thread only, like clients_
  bool stalled_ = false;
  std::vector<Client> clients_;
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
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string port_text() const { return std::to_string(port_); }

 private:
  std::uint16_t port_ = 0;  // set by the constructor, before fd_ is initialised
  int fd_ = -1;
};

}  // namespace echod::bench::test
