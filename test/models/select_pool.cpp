// Model select-pool: each connection's bytes come back in order although several workers send,
// clients that stop reading hold up neither the pool nor anyone else, select-pool.threads sizes
// the pool, and a stop with parked connections is prompt.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kThreads = 4;

// A stream of numbered chunks of random sizes ("[client C chunk S]" then 1 B - 16 KiB of random
// bytes), at least `size` bytes long: any reordering or loss shows as a mismatch.
std::string numbered_stream(int client, std::size_t size, std::uint64_t seed) {
  Rng rng(seed + static_cast<std::uint64_t>(client));
  std::string stream;
  for (int chunk = 0; stream.size() < size; ++chunk) {
    stream += "[client " + std::to_string(client) + " chunk " + std::to_string(chunk) + "]";
    stream += rng.bytes(rng.between(1, 16 * KiB));
  }
  return stream;
}

EchodProcess start(int threads, const std::vector<std::string>& extra = {}) {
  return EchodProcess(model_args("select-pool", {"threads=" + std::to_string(threads)}, extra));
}

}  // namespace

TEST_CASE("every client gets its own bytes in order while slow readers lag") {
  constexpr std::uint64_t kSeed = 20;
  CAPTURE(kSeed);
  constexpr int kFast = 15;
  constexpr int kSlow = 5;  // more than workers: a pool that waits on them would be stuck
  constexpr std::size_t kFastSize = 512 * KiB;
  // Far more than the kernel buffers between a slow client and echod (small buffers on the
  // client's side, at most 4 MiB autotuned on echod's) plus echod's queue (high-water 64 KiB):
  // echod's sends to it hit EAGAIN, and the client's sends stall once echod stops reading.
  constexpr std::size_t kSlowSize = 8 * MiB;
  constexpr std::size_t kSlowRead = 4 * KiB;
  constexpr Millis kStalled{500};        // no progress for this long: backpressure
  constexpr Millis kLong{60000};         // bound for whole streams on a busy machine
  constexpr Millis kFastTimeout{20000};  // fast clients, while the slow ones are stalled
  EchodProcess echod = start(kThreads, {"--high-water=65536"});

  std::vector<std::string> streams;
  for (int i = 0; i < kFast + kSlow; ++i)
    streams.push_back(numbered_stream(i, i < kFast ? kFastSize : kSlowSize, kSeed));
  std::vector<TestClient> clients(kFast + kSlow);
  for (int i = 0; i < kFast + kSlow; ++i) {
    ConnectOptions options;
    if (i >= kFast) options.receive_buffer = options.send_buffer = static_cast<int>(kSlowRead);
    REQUIRE(clients[static_cast<std::size_t>(i)].connect(echod.port(), options));
  }

  std::atomic<int> stalled{0};  // slow senders whose sends stopped making progress
  std::atomic<bool> fast_done{false};
  std::vector<std::atomic<std::size_t>> received(kFast + kSlow);
  std::vector<Outcome> sent(kFast + kSlow);
  std::vector<Outcome> echoed(kFast + kSlow);
  std::vector<std::thread> threads;
  // Slow clients: one thread pushes the whole stream (pipelined, never waiting for echoes);
  // another reads a few small pieces with pauses, then stops reading until every fast client is
  // done, then reads the rest.
  for (int i = kFast; i < kFast + kSlow; ++i) {
    const auto k = static_cast<std::size_t>(i);
    threads.emplace_back([&, k] {
      const std::string_view stream = streams[k];
      const auto deadline = Clock::now() + kLong;
      auto last_progress = Clock::now();
      bool counted = false;
      std::size_t pushed = 0;
      while (pushed < stream.size() && Clock::now() < deadline) {
        const std::ptrdiff_t n = clients[k].try_send(stream.substr(pushed));
        if (n < 0) break;
        if (n > 0) {
          pushed += static_cast<std::size_t>(n);
          last_progress = Clock::now();
        } else {
          std::this_thread::sleep_for(Millis{5});
        }
        if (!counted && Clock::now() - last_progress > kStalled) {
          counted = true;
          ++stalled;
        }
      }
      if (pushed < stream.size()) {
        sent[k] = Outcome::failure("pushed " + std::to_string(pushed) + " of " +
                                   std::to_string(stream.size()) + " bytes");
      }
    });
    threads.emplace_back([&, k] {
      std::string got;
      for (int piece = 0; piece < 16; ++piece) {
        Received some = clients[k].recv_exact(kSlowRead, kLong);
        got += some.data;
        received[k] = got.size();
        if (!some) {
          echoed[k] = some;
          return;
        }
        std::this_thread::sleep_for(Millis{20});
      }
      const auto stall_until = Clock::now() + kLong;
      while (!fast_done && Clock::now() < stall_until)
        std::this_thread::sleep_for(Millis{10});
      Received rest = clients[k].recv_exact(streams[k].size() - got.size(), kLong);
      got += rest.data;
      received[k] = got.size();
      echoed[k] = rest ? same_bytes(got, streams[k]) : rest;
    });
  }
  // Only once every slow client is stalled (echod parked its echo and stopped reading it) do
  // the fast clients start: sending and reading at once.
  CHECK(eventually([&] { return stalled == kSlow; }, kLong));
  for (int i = 0; i < kFast; ++i) {
    const auto k = static_cast<std::size_t>(i);
    threads.emplace_back([&, k] { echoed[k] = clients[k].echo(streams[k], kFastTimeout); });
  }
  for (std::size_t k = 0; k < kFast; ++k)
    threads[2 * kSlow + k].join();
  // Every slow client is still far behind (stalled): the fast ones did not wait for them.
  for (std::size_t k = kFast; k < kFast + kSlow; ++k) {
    INFO("slow client " << k << " has read " << received[k] << " bytes");
    CHECK(received[k] < streams[k].size());
  }
  fast_done = true;
  for (std::size_t k = 0; k < 2 * kSlow; ++k)
    threads[k].join();

  for (std::size_t k = 0; k < clients.size(); ++k) {
    INFO("client " << k << (k < kFast ? " (fast)" : " (slow)"));
    CHECK(echoed[k]);
    CHECK(sent[k]);
  }
  clients.clear();  // SIGTERM begins a drain: it ends once the clients have left
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("one worker keeps the order too") {
  EchodProcess echod = start(1);
  TestClient client = connect_client(echod.port());
  REQUIRE(client.echo(numbered_stream(0, 2 * MiB, 7), Millis{30000}));
  client.close();  // SIGTERM begins a drain: it ends once the client has left
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("select-pool.threads sets the number of workers") {
  // The main thread runs the reactor; the workers and core's drain reporter come on top.
  for (int threads : {1, 7}) {
    EchodProcess echod = start(threads);
    CAPTURE(threads);
    CHECK(wait_for_thread_count(echod.pid(), 2 + threads));
    TestClient client = connect_client(echod.port());
    REQUIRE(client.echo("hello"));
    CHECK(thread_count(echod.pid()) == 2 + threads);
    client.close();  // SIGTERM begins a drain: it ends once the client has left
    REQUIRE(echod.stop() == 0);
  }
}

TEST_CASE("a stop with parked connections closes them all and joins the workers") {
  EchodProcess echod = start(kThreads, {"--high-water=65536"});
  TestClient idle = connect_client(echod.port());
  REQUIRE(idle.echo("idle"));
  // Clients that send and never read: their echoes fill the socket and get parked.
  std::vector<TestClient> stuck;
  const std::string chunk = random_bytes(256 * KiB, 3);
  for (int i = 0; i < 3; ++i) {
    stuck.push_back(connect_client(echod.port(), {.receive_buffer = 4096}));
    // Push until the client's sends have taken nothing for half a second (backpressure).
    auto last_progress = Clock::now();
    while (Clock::now() - last_progress < Millis{500}) {
      const std::ptrdiff_t n = stuck.back().try_send(chunk);
      REQUIRE(n >= 0);
      if (n > 0) last_progress = Clock::now();
      std::this_thread::sleep_for(Millis{5});
    }
  }
  REQUIRE(idle.echo("still served"));
  // The first signal begins a drain, the second stops at once.
  echod.signal(SIGTERM);
  REQUIRE(echod.wait_for_log("draining", Millis{2000}));
  REQUIRE(echod.stop(Millis{5000}) == 0);
  CHECK(idle.is_closed_by_peer(Millis{2000}));
  for (auto& client : stuck)
    CHECK(client.is_closed_by_peer(Millis{5000}));
}

TEST_CASE("select-pool.threads is validated") {
  for (const char* value : {"0", "-1", "257", "99999999999", "4x"}) {
    CAPTURE(value);
    CHECK(option_rejected(
        "select-pool", std::string("--select-pool.threads=") + value,
        "option '--select-pool.threads' is invalid: must be a whole number between 1 and 256"));
  }
}
