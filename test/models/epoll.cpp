// Model epoll: in either mode (epoll.edge-triggered false or true), one client that floods the
// server, keeping its receive queue full, cannot starve a ping-pong client beside it, and every
// flooded byte still comes back in order. Edge-triggered mode reads each socket until its queue
// is empty; without a per-wakeup budget the flooder's socket would never run dry (issue 13).
// And in either mode data followed at once by the client's FIN is all echoed before the close.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Sends `pattern` over and over from one thread and checks its echo, byte for byte, on
// another, until finish(). Owned by the test thread; the counters are read while it runs.
class Flooder {
 public:
  Flooder(TestClient& client, const std::string& pattern)
      : client_(client),
        pattern_(pattern),
        reader_([this] { read(); }),
        sender_([this](const std::stop_token& stop) { send(stop); }) {}
  Flooder(const Flooder&) = delete;
  Flooder& operator=(const Flooder&) = delete;
  ~Flooder() { finish(); }

  [[nodiscard]] std::size_t sent() const { return sent_; }
  [[nodiscard]] std::size_t received() const { return received_; }

  // Stops sending, half-closes, and waits for the rest of the echo and the server's EOF.
  // Succeeds if every byte sent came back in order.
  Outcome finish() {
    if (finished_) return result();
    finished_ = true;
    sender_.request_stop();
    if (sender_.joinable()) sender_.join();
    if (send_end_) send_end_ = client_.shutdown_write();
    if (reader_.joinable()) reader_.join();
    return result();
  }

 private:
  Outcome result() const {
    if (!send_end_) return send_end_;
    if (!read_end_) return read_end_;
    if (received_ != sent_) {
      return Outcome::failure(std::to_string(sent_) + " bytes flooded, " +
                              std::to_string(received_) + " came back before EOF");
    }
    return {};
  }

  void send(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      const Outcome sent = client_.send_all(pattern_, 30s);
      if (!sent) {
        send_end_ = sent;
        return;
      }
      sent_ += pattern_.size();
    }
  }

  void read() {
    constexpr std::size_t kChunk = 64 * KiB;
    for (;;) {
      const Received part = client_.recv_exact(kChunk, 30s);
      for (std::size_t i = 0; i < part.data.size();) {  // the pattern repeats: compare in pieces
        const std::size_t at = (received_ + i) % pattern_.size();
        const std::size_t size = std::min(part.data.size() - i, pattern_.size() - at);
        if (Outcome same = same_bytes(std::string_view(part.data).substr(i, size),
                                      std::string_view(pattern_).substr(at, size));
            !same) {
          read_end_ = Outcome::failure("flood echo at offset " + std::to_string(received_ + i) +
                                       ": " + same.error);
          return;
        }
        i += size;
      }
      received_ += part.data.size();
      if (!part) {
        if (part.error.find("EOF") == std::string::npos) read_end_ = part;
        return;
      }
    }
  }

  TestClient& client_;
  const std::string& pattern_;
  std::atomic<std::size_t> sent_{0};
  std::atomic<std::size_t> received_{0};
  Outcome send_end_;  // written by the sender thread, read after it joined
  Outcome read_end_;  // written by the reader thread, read after it joined
  bool finished_ = false;
  std::jthread reader_;  // last: they start once the members above exist
  std::jthread sender_;
};

}  // namespace

TEST_CASE("a flooding client cannot starve a ping-pong client") {
  const std::string edge_triggered = GENERATE(as<std::string>{}, "true", "false");
  CAPTURE(edge_triggered);
  constexpr std::uint64_t kSeed = 31;
  CAPTURE(kSeed);
  const std::string pattern = random_bytes(1 * MiB, kSeed);
  EchodProcess echod(model_args("epoll", {"edge-triggered=" + edge_triggered}));
  TestClient pinger = connect_client(echod.port());
  TestClient flooding = connect_client(echod.port());
  REQUIRE(pinger.echo("before the flood"));

  Flooder flooder(flooding, pattern);
  REQUIRE(eventually([&] { return flooder.received() >= 4 * MiB; }, 10s));
  Rng rng(kSeed + 1);
  Millis slowest{0};
  const std::size_t flooded_before = flooder.received();
  // Pings for 2 s: long enough for the flood to move many megabytes meanwhile.
  int pings = 0;
  for (const auto until = Clock::now() + 2s; Clock::now() < until; ++pings) {
    std::this_thread::sleep_for(10ms);
    const std::string message = rng.bytes(rng.between(1, 1000));
    const auto start = Clock::now();
    const Outcome echoed = pinger.echo(message, 1s);
    slowest = std::max(slowest, std::chrono::duration_cast<Millis>(Clock::now() - start));
    INFO("ping " << pings << " while the flooder had " << flooder.received() << " bytes echoed");
    REQUIRE(echoed);
  }
  const std::size_t flooded_during = flooder.received() - flooded_before;
  const Outcome flood = flooder.finish();
  INFO(pings << " pings in 2 s, the slowest in " << slowest.count() << " ms; the flooder got "
             << flooded_during << " bytes echoed meanwhile and " << flooder.received() << " of "
             << flooder.sent() << " in all: " << flood);
  REQUIRE(flooded_during > 0);  // it really flooded while we pinged
  REQUIRE(flood);
  pinger.close();
  flooding.close();
  REQUIRE(echod.stop() == 0);
}

// Edge-triggered mode takes a short read for an empty receive queue (no EAGAIN recv after
// it) unless EPOLLRDHUP says a FIN came too, since a FIN already queued behind the data sends
// no new edge. Data and FIN sent back to back, in one segment or two, small and large: each
// connection gets all of its bytes back, then the server's FIN.
TEST_CASE("data and FIN sent together: all echoed, then closed, in either mode") {
  const std::string edge_triggered = GENERATE(as<std::string>{}, "true", "false");
  CAPTURE(edge_triggered);
  EchodProcess echod(model_args("epoll", {"edge-triggered=" + edge_triggered}));
  for (const std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{70'000}}) {
    CAPTURE(size);
    std::vector<TestClient> clients(20);
    const std::string payload = random_bytes(size, 7 + size);
    for (auto& client : clients) {
      REQUIRE(client.connect(echod.port()));
      REQUIRE(client.send_all(payload));
      REQUIRE(client.shutdown_write());
    }
    for (auto& client : clients) {
      const auto echoed = client.recv_until_eof(Millis{5000});
      REQUIRE(echoed);
      REQUIRE(same_bytes(echoed.data, payload));
    }
  }
  REQUIRE(echod.stop() == 0);
}
