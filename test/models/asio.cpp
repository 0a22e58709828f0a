// Models asio and coro with their io_context on two threads (<model>.threads=2): many clients
// at once, a client that stops reading beside busy ones, a drain, a stop with clients
// connected, the drain's deadline and the idle timeout while a write is in flight, and option
// validation. test/models/coro.cpp compiles this file with ECHOD_ASIO_TEST_MODEL "coro":
// both models promise the same behaviour through the same option, so one text tests both.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

#ifndef ECHOD_ASIO_TEST_MODEL
#define ECHOD_ASIO_TEST_MODEL "asio"
#endif

using namespace echod::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kModel = ECHOD_ASIO_TEST_MODEL;
const std::string kThreadsKey = kModel + ".threads";
// echod's main thread runs the io_context too, so threads=2 starts exactly one more thread.
constexpr int kThreads = 2;
// Core runs one thread of its own beside the model's (it reports the drain).
constexpr int kProcessThreads = kThreads + 1;

std::vector<std::string> two_threads(std::vector<std::string> core_args = {}) {
  std::vector<std::string> args = model_args(kModel, {"threads=" + std::to_string(kThreads)});
  args.insert(args.end(), core_args.begin(), core_args.end());
  return args;
}

// The second thread starts right after the listening line.
void wait_for_threads(const EchodProcess& echod) {
  REQUIRE(wait_for_thread_count(echod.pid(), kProcessThreads, 5s));
}

// Random messages of 1 byte to 64 KiB, each echoed and compared before the next.
Outcome echo_random(TestClient& client, std::uint64_t seed, int messages) {
  Rng rng(seed);
  for (int i = 0; i < messages; ++i) {
    const std::string message = rng.bytes(rng.between(1, 64 * KiB));
    if (Outcome echoed = client.echo(message, 20s); !echoed) {
      return Outcome::failure("message " + std::to_string(i) + " of " +
                              std::to_string(message.size()) + " bytes: " + echoed.error);
    }
  }
  return {};
}

// What a client sent without reading: the prefix of `chunk` each try_send took, in order.
struct Pushed {
  std::string chunk;
  std::vector<std::size_t> taken;
  std::size_t total = 0;

  // Sends `chunk` until the socket has taken nothing for `quiet` or `cap` bytes went out.
  Outcome push(TestClient& client, Millis quiet, std::size_t cap) {
    for (auto last = Clock::now(); total < cap && Clock::now() - last < quiet;) {
      const std::ptrdiff_t n = client.try_send(chunk);
      if (n < 0) return Outcome::failure("send failed after " + std::to_string(total) + " bytes");
      if (n == 0) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      taken.push_back(static_cast<std::size_t>(n));
      total += static_cast<std::size_t>(n);
      last = Clock::now();
    }
    return {};
  }

  // The bytes an in-order echo of everything pushed consists of.
  [[nodiscard]] std::string expected() const {
    std::string bytes;
    bytes.reserve(total);
    for (std::size_t n : taken)
      bytes.append(chunk, 0, n);
    return bytes;
  }
};

}  // namespace

TEST_CASE("50 concurrent clients each get their random data back in order") {
  constexpr int kClients = 50;
  EchodProcess echod(two_threads());
  wait_for_threads(echod);
  // All connected before any echoes, so the two threads serve all 50 at once.
  std::vector<TestClient> clients;
  for (int i = 0; i < kClients; ++i)
    clients.push_back(connect_client(echod.port()));

  std::vector<Outcome> outcomes(kClients);
  {
    std::vector<std::jthread> workers;
    for (int i = 0; i < kClients; ++i) {
      workers.emplace_back([&, i] {
        TestClient& client = clients[static_cast<std::size_t>(i)];
        outcomes[i] = echo_random(client, 1000 + static_cast<std::uint64_t>(i), 20);
        // One payload far larger than the server's buffer: its echo is many partial writes.
        if (outcomes[i]) outcomes[i] = client.echo(random_bytes(MiB, 2000 + i), 30s);
      });
    }
  }
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << " (seeds " << 1000 + i << ", " << 2000 + i << ")");
    CHECK(outcomes[i]);
  }
  CHECK(thread_count(echod.pid()) == kProcessThreads);
  clients.clear();  // SIGTERM begins a drain: it ends once the clients have left
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a client that stops reading is held back while the others are served") {
  constexpr std::size_t kCap = 256 * MiB;  // a server that buffered without bound takes it all
  EchodProcess echod(two_threads());
  wait_for_threads(echod);
  ConnectOptions small_window;
  small_window.receive_buffer = 4 * KiB;
  TestClient stuck = connect_client(echod.port(), small_window);

  constexpr int kOthers = 8;
  std::vector<TestClient> others;
  for (int i = 0; i < kOthers; ++i)
    others.push_back(connect_client(echod.port()));
  std::atomic<bool> pushing{true};
  std::vector<Outcome> outcomes(kOthers);
  std::vector<int> rounds(kOthers, 0);
  Pushed pushed{random_bytes(64 * KiB, 7), {}, 0};
  Outcome push_result;
  {
    // The others echo for as long as the stuck client pushes, and at least 20 times.
    std::vector<std::jthread> workers;
    for (int i = 0; i < kOthers; ++i) {
      workers.emplace_back([&, i] {
        Rng rng(100 + static_cast<std::uint64_t>(i));
        while (outcomes[i] && (pushing || rounds[i] < 20)) {
          outcomes[i] = others[i].echo(rng.bytes(rng.between(1, 4 * KiB)), 10s);
          ++rounds[i];
        }
      });
    }
    push_result = pushed.push(stuck, 1s, kCap);
    pushing = false;
  }
  INFO("the stuck client pushed " << pushed.total << " bytes before the server stopped reading");
  REQUIRE(push_result);
  CHECK(pushed.total < kCap);
  for (int i = 0; i < kOthers; ++i) {
    INFO("other client " << i << " after " << rounds[i] << " echoes");
    CHECK(outcomes[i]);
  }

  // Reading again releases the backpressure: everything comes back, in order.
  const Received echoed = stuck.recv_exact(pushed.total, 60s);
  REQUIRE(echoed);
  REQUIRE(same_bytes(echoed.data, pushed.expected()));
  REQUIRE(stuck.echo("still served"));
  stuck.close();  // SIGTERM begins a drain: it ends once the clients have left
  for (TestClient& other : others)
    other.close();
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a second SIGTERM with clients connected closes them all and exits 0") {
  EchodProcess echod(two_threads());
  wait_for_threads(echod);
  std::vector<TestClient> clients;
  clients.reserve(12);  // references to elements are taken below
  for (int i = 0; i < 10; ++i) {
    clients.push_back(connect_client(echod.port()));
    REQUIRE(clients.back().echo("idle " + std::to_string(i)));
  }
  ConnectOptions small_window;
  small_window.receive_buffer = 4 * KiB;
  TestClient& stuck = clients.emplace_back(connect_client(echod.port(), small_window));
  Pushed pushed{random_bytes(64 * KiB, 9), {}, 0};
  REQUIRE(pushed.push(stuck, 300ms, 256 * MiB));  // the server now waits to write to it
  REQUIRE(pushed.total > 0);

  TestClient& streaming = clients.emplace_back(connect_client(echod.port()));
  std::atomic<int> streamed{0};
  std::jthread streamer([&](const std::stop_token& stop) {
    Rng rng(10);
    while (!stop.stop_requested() && streaming.echo(rng.bytes(rng.between(1, 4 * KiB)), 5s)) {
      ++streamed;
    }
  });
  REQUIRE(eventually([&] { return streamed >= 10; }, 5s, 1ms));

  // The first signal begins a drain, the second stops at once. run() returns only after
  // joining its threads; a thread left running would make the exit status 134
  // (std::terminate) or miss the deadline instead of 0.
  echod.signal(SIGTERM);
  REQUIRE(echod.wait_for_log("draining", 2s));
  echod.signal(SIGTERM);
  const std::optional<ExitStatus> status = echod.wait_exit(3s);
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  streamer.request_stop();
  streamer.join();
  for (std::size_t i = 0; i < clients.size(); ++i) {
    INFO("client " << i);
    CHECK(clients[i].is_closed_by_peer(2s));
  }
  CHECK(thread_count(echod.pid()) == -1);  // reaped: no thread of it is left
  CHECK(echod.log().find("failed") == std::string::npos);
}

TEST_CASE("the thread count is validated") {
  for (const char* threads : {"0", "-1", "1025", "99999999999", "2x"}) {
    CAPTURE(threads);
    CHECK(option_rejected(
        kModel, "--" + kThreadsKey + "=" + threads,
        "option '--" + kThreadsKey + "' is invalid: must be a whole number between 1 and 1024"));
  }
}

TEST_CASE("a drain serves the open clients on and exits 0 once the last has left") {
  EchodProcess echod(two_threads());
  wait_for_threads(echod);
  std::vector<TestClient> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect_client(echod.port()));
    REQUIRE(clients.back().echo("before " + std::to_string(i)));
  }
  echod.signal(SIGTERM);
  REQUIRE(echod.wait_for_log("draining", 2s));
  TestClient late;
  CHECK_FALSE(late.connect(echod.port()));  // the listener is closed
  for (std::size_t i = 0; i < clients.size(); ++i) {
    INFO("client " << i);
    REQUIRE(clients[i].echo(random_bytes(256 * KiB, 30 + i), 10s));
  }
  clients[0].close();
  REQUIRE(clients[1].shutdown_write());  // a half-close ends a connection too
  const Received rest = clients[1].recv_until_eof(5s);
  REQUIRE(rest);
  CHECK(rest.data.empty());
  std::this_thread::sleep_for(200ms);
  REQUIRE(echod.running());  // one client is left
  REQUIRE(clients[2].echo("still served"));
  clients[2].close();
  const std::optional<ExitStatus> status = echod.wait_exit(3s);
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  CHECK(echod.wait_for_log("drain complete", 2s));
  CHECK(echod.wait_for_log("accepted=3 ", 2s));
  CHECK(echod.wait_for_log(" drained=3 ", 2s));
}

TEST_CASE("at the drain's deadline a client the server is writing to gets its echo, then FIN") {
  EchodProcess echod(two_threads({"--drain-timeout=0.5"}));
  wait_for_threads(echod);
  TestClient idle = connect_client(echod.port());
  REQUIRE(idle.echo("idle"));
  ConnectOptions small_window;
  small_window.receive_buffer = 4 * KiB;
  TestClient stuck = connect_client(echod.port(), small_window);
  Pushed pushed{random_bytes(64 * KiB, 11), {}, 0};
  REQUIRE(pushed.push(stuck, 300ms, 256 * MiB));  // the server now waits to write to it
  REQUIRE(pushed.total > 0);

  echod.signal(SIGTERM);
  REQUIRE(echod.wait_for_log("drain timeout", 3s));
  // What the server had read comes back in order, then EOF (a reset would fail the read).
  // What it had not read yet is discarded by the lingering close.
  const Received echoed = stuck.recv_until_eof(10s);
  REQUIRE(echoed);
  INFO("pushed " << pushed.total << " bytes, " << echoed.data.size() << " came back");
  CHECK(echoed.data.size() > 0);
  CHECK(same_bytes(echoed.data, pushed.expected().substr(0, echoed.data.size())));
  const Received idle_rest = idle.recv_until_eof(5s);
  REQUIRE(idle_rest);
  CHECK(idle_rest.data.empty());
  stuck.close();
  idle.close();
  const std::optional<ExitStatus> status = echod.wait_exit(5s);
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  CHECK(echod.wait_for_log(" drained=2 ", 2s));
}

TEST_CASE("the idle timeout closes an idle client, not one the server is still writing to") {
  EchodProcess echod(two_threads({"--idle-timeout=1", "--log-level=debug"}));
  wait_for_threads(echod);
  TestClient idle = connect_client(echod.port());
  REQUIRE(idle.echo("idle"));
  ConnectOptions small_window;
  small_window.receive_buffer = 4 * KiB;
  TestClient stuck = connect_client(echod.port(), small_window);
  Pushed pushed{random_bytes(64 * KiB, 12), {}, 0};
  REQUIRE(pushed.push(stuck, 300ms, 256 * MiB));  // a write is in flight from now on
  REQUIRE(pushed.total > 0);

  // Longer than two timeouts: the idle client goes, the stuck one (echo pending) stays.
  REQUIRE(idle.is_closed_by_peer(5s));
  std::this_thread::sleep_for(1500ms);
  const Received echoed = stuck.recv_exact(pushed.total, 20s);
  REQUIRE(echoed);
  REQUIRE(same_bytes(echoed.data, pushed.expected()));
  REQUIRE(stuck.echo("still served"));
  CHECK(echod.wait_for_log("closed after 1 s idle", 2s));
  stuck.close();
  REQUIRE(echod.stop() == 0);
  CHECK(echod.wait_for_log(" closed_idle=1 ", 2s));
  const std::string totals = "bytes_in=" + std::to_string(pushed.total + 4 + 12) +
                             " bytes_out=" + std::to_string(pushed.total + 4 + 12);
  CHECK(echod.wait_for_log(totals, 2s));
}
