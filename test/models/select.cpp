// Model select: connections past select.max-clients, or whose descriptor select() cannot watch
// (>= FD_SETSIZE), are closed on accept while everyone already served goes on being served.
#include <sys/select.h>

#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;

namespace {

// Connects and echoes `text`, retrying for up to `timeout`: the server frees a slot only once
// it has seen the previous client's FIN, which may race with the new handshake.
bool served_within(const EchodProcess& echod, const std::string& text, TestClient& client,
                   Millis timeout = kDefaultTimeout) {
  return eventually(
      [&] {
        client = TestClient();
        return client.connect(echod.port()) && client.echo(text, Millis{1000});
      },
      timeout, Millis{50});
}

}  // namespace

TEST_CASE("the client past max-clients is closed, the others are still served") {
  constexpr int kCap = 3;
  EchodProcess echod(model_args("select", {"max-clients=" + std::to_string(kCap)}));
  std::vector<TestClient> clients = connect_served(echod.port(), kCap);

  // The kernel completes the handshake; echod accepts the connection and closes it at once.
  TestClient refused = connect_client(echod.port());
  CHECK(refused.is_closed_by_peer(Millis{5000}));
  CHECK(echod.wait_for_log("select.max-clients"));
  for (auto& client : clients)
    REQUIRE(client.echo("still served"));

  // A slot is free again once a served client leaves.
  clients.front().close();
  TestClient next;
  CHECK(served_within(echod, "next", next));
  for (std::size_t i = 1; i < clients.size(); ++i)
    REQUIRE(clients[i].echo("still served"));
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("connections with a descriptor >= FD_SETSIZE are closed, lower ones still echo") {
  // max-clients at its ceiling, so that the descriptor check is what refuses.
  EchodProcess echod(model_args("select", {"max-clients=" + std::to_string(FD_SETSIZE)}));
  // echod already holds a few descriptors (stdio, listener, stop pipe, spare), so fewer than
  // FD_SETSIZE clients fit; each refused connection frees its descriptor, so every later one is
  // refused too.
  constexpr int kClients = FD_SETSIZE + 16;
  std::vector<TestClient> served;
  std::vector<TestClient> refused;
  for (int i = 0; i < kClients; ++i) {
    TestClient client = connect_client(echod.port());
    if (client.echo("c" + std::to_string(i), Millis{2000})) {
      INFO("client " << i << " served after " << refused.size() << " refusals");
      REQUIRE(refused.empty());
      served.push_back(std::move(client));
    } else {
      INFO("client " << i);
      REQUIRE(client.is_closed_by_peer(Millis{2000}));
      refused.push_back(std::move(client));
    }
  }
  INFO(served.size() << " served, " << refused.size() << " refused");
  CHECK(served.size() >= FD_SETSIZE - 32);
  CHECK(served.size() < FD_SETSIZE);
  CHECK(refused.size() >= 16);
  CHECK(echod.wait_for_log("FD_SETSIZE"));
  REQUIRE(echod.running());

  // Everyone admitted is still served, including the highest descriptors.
  for (std::size_t i = 0; i < served.size(); ++i) {
    INFO("served client " << i);
    REQUIRE(served[i].echo("again " + std::to_string(i)));
  }
  // Closing served clients frees low descriptors for new ones.
  for (int i = 0; i < 8; ++i)
    served[static_cast<std::size_t>(i)].close();
  TestClient next;
  CHECK(served_within(echod, "next", next));
  REQUIRE(echod.stop() == 0);
}
