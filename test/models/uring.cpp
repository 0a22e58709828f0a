// Model uring: with a receive buffer pool far smaller than the traffic (two 64-byte buffers for
// 16 clients), recvs run out of buffers (ENOBUFS ends a multishot recv and it must be re-armed
// once buffers are back) and bytes are copied behind the send in flight instead of being sent
// from a held buffer; every byte must still come back in order on its own connection. And the
// options that must be a power of two or need a kernel feature are checked before serving.
#define CATCH_CONFIG_MAIN
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;
using namespace std::chrono_literals;

TEST_CASE("a two-buffer pool still echoes every byte of 16 concurrent clients") {
  constexpr int kClients = 16;
  constexpr std::size_t kPayload = 512 * KiB;
  constexpr std::uint64_t kSeed = 47;
  CAPTURE(kSeed);
  EchodProcess echod(model_args("uring", {"buffers=2", "buffer-size=64"}));
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
  std::printf("uring, 2 x 64 B buffers: %d clients echoed %zu bytes each, all in order\n", kClients,
              kPayload);
  for (auto& client : clients)
    client.close();
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("uring.buffers must be a power of two") {
  REQUIRE(option_rejected("uring", "--uring.buffers=100", "power of two"));
}
