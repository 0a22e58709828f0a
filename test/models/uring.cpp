// Model uring, with its multishot recv (capped by the kernel) and with a single-shot recv per
// message (uring.multishot=false, what a kernel without the cap gets): with a receive buffer
// pool far smaller than the traffic (two 64-byte buffers for 16 clients), recvs run out of
// buffers (ENOBUFS ends a recv and it must be re-armed once buffers are back) and bytes are
// copied behind the send in flight instead of being sent from a held buffer; every byte must
// still come back in order on its own connection. Clients that stop reading make it stop
// receiving at the high-water mark: its memory grows by at most about the mark per client, and
// every byte comes back once they read. A submission queue far smaller than the connections
// still serves them all. And the options that must be a power of two are checked
// before serving.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;
using namespace std::chrono_literals;

TEST_CASE("a two-buffer pool still echoes every byte of 16 concurrent clients") {
  const std::string multishot = GENERATE("true", "false");
  CAPTURE(multishot);
  constexpr int kClients = 16;
  constexpr std::size_t kPayload = 512 * KiB;
  constexpr std::uint64_t kSeed = 47;
  CAPTURE(kSeed);
  EchodProcess echod(
      model_args("uring", {"buffers=2", "buffer-size=64", "multishot=" + multishot}));
  std::vector<TestClient> clients;
  std::vector<std::string> payloads;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(connect_client(echod.port()));
    payloads.push_back(random_bytes(kPayload, kSeed + static_cast<std::uint64_t>(i)));
  }
  std::vector<Outcome> outcomes(kClients);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] { outcomes[i] = clients[i].echo(payloads[i], 60s); });
    }
  }
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << ": " << outcomes[i]);
    REQUIRE(outcomes[i]);
  }
  std::printf(
      "uring (multishot=%s), 2 x 64 B buffers: %d clients echoed %zu bytes each, all in "
      "order\n",
      multishot.c_str(), kClients, kPayload);
  for (auto& client : clients)
    client.close();
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("clients that stop reading are held to the high-water mark") {
  const std::string multishot = GENERATE("true", "false");
  CAPTURE(multishot);
  constexpr std::size_t kHighWater = 256 * KiB;
  constexpr int kClients = 4;
  EchodProcess echod(model_args("uring", {"multishot=" + multishot},
                                {"--high-water=" + std::to_string(kHighWater)}));
  {
    // Served once, so the ring and its buffer pool (touched at start) are in the baseline.
    TestClient first = connect_client(echod.port());
    REQUIRE(first.echo("first"));
  }
  const long baseline_kib = memory_kib(echod.pid());
  std::vector<TestClient> clients;
  std::vector<std::string> payloads;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(connect_client(echod.port()));
    payloads.push_back(random_bytes(1 * MiB, 90 + static_cast<std::uint64_t>(i)));
  }
  std::vector<std::size_t> sent(kClients, 0);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] {
        // The payload over and over, until the socket takes nothing for 300 ms: every buffer
        // on the way is full.
        const std::string_view payload = payloads[i];
        auto last_progress = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - last_progress < 300ms) {
          const std::ptrdiff_t n = clients[i].try_send(payload.substr(sent[i] % payload.size()));
          if (n < 0) return;
          if (n == 0) {
            std::this_thread::sleep_for(1ms);
            continue;
          }
          sent[i] += static_cast<std::size_t>(n);
          last_progress = std::chrono::steady_clock::now();
        }
      });
    }
  }
  const long grown_kib = memory_kib(echod.pid()) - baseline_kib;
  // The mark plus 64 KiB per client, and 1 MiB for the allocator's rounding.
  const long bound_kib = kClients * static_cast<long>((kHighWater + 64 * KiB) / KiB) + 1024;
  std::printf(
      "uring (multishot=%s): %d clients pushed %zu..%zu bytes without reading; RSS grew "
      "%ld KiB (bound %ld)\n",
      multishot.c_str(), kClients, *std::min_element(sent.begin(), sent.end()),
      *std::max_element(sent.begin(), sent.end()), grown_kib, bound_kib);
  CHECK(grown_kib <= bound_kib);
  std::vector<Received> echoes(kClients);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] {
        static_cast<Outcome&>(echoes[i]) = clients[i].shutdown_write();
        if (echoes[i]) echoes[i] = clients[i].recv_until_eof(60s, sent[i] + 1);
      });
    }
  }
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << ": " << echoes[i]);
    REQUIRE(echoes[i]);
    REQUIRE(echoes[i].data.size() == sent[i]);
    for (std::size_t at = 0; at < sent[i]; at += payloads[i].size()) {
      const std::size_t size = std::min(payloads[i].size(), sent[i] - at);
      REQUIRE(echoes[i].data.compare(at, size, payloads[i], 0, size) == 0);
    }
  }
  REQUIRE(echod.stop() == 0);
}

// With 8 submission entries, one accept batch arms far more recvs than fit: the full queue is
// submitted and what completed is reaped while the loop is still handling completions.
TEST_CASE("an 8-entry submission queue serves 200 clients at once") {
  EchodProcess echod(model_args("uring", {"queue-depth=8"}));
  std::vector<TestClient> clients = echo_concurrently(echod.port(), 200);
  for (auto& client : clients)
    client.close();
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("uring.buffers must be a power of two") {
  REQUIRE(option_rejected("uring", "--uring.buffers=100", "power of two"));
}
