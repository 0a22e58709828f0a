// Model fork: its cap (fork.max-children), reaping children, no child left after a stop.
#include <signal.h>

#include <algorithm>

#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;

namespace {

constexpr int kCap = 2;
const std::string kFullLine = "children busy (fork.max-children)";

EchodProcess start_capped() {
  // No drain: a stop closes the clients still connected at once (drains are tested elsewhere).
  return EchodProcess(
      model_args("fork", {"max-children=" + std::to_string(kCap)}, {"--drain-timeout=0"}));
}

std::size_t children_of(const EchodProcess& echod) {
  return descendant_pids(echod.pid()).size();
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

}  // namespace

TEST_CASE("the client past max-children waits in the backlog until a served one leaves") {
  EchodProcess echod = start_capped();
  std::vector<TestClient> clients = connect_served(echod.port(), kCap);
  CHECK(children_of(echod) == kCap);

  // Its handshake completes (the kernel queues it), but no child is forked for it yet.
  TestClient waiting = connect_waiting(echod.port());
  CHECK(not_served_within(waiting, 7));
  CHECK(children_of(echod) == kCap);
  for (auto& client : clients)
    REQUIRE(client.echo("still served"));

  clients.front().close();
  REQUIRE(receives(waiting, "waiting"));
  CHECK(children_of(echod) <= kCap);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("reaching the cap is logged once per burst, not once per waiting client") {
  EchodProcess echod = start_capped();
  std::vector<TestClient> clients = connect_served(echod.port(), kCap);
  std::vector<TestClient> waiting;
  for (int i = 0; i < 4; ++i) {
    waiting.push_back(connect_waiting(echod.port(), "w" + std::to_string(i)));
  }
  REQUIRE(echod.wait_for_log(kFullLine));
  // Served two at a time: each close lets one waiting client in, at the cap again each time;
  // the burst ends when a free child finds the backlog empty.
  clients.clear();
  for (int i = 0; i < 4; ++i) {
    REQUIRE(waiting[i].recv_exact(2, Millis{5000}));
    waiting[i].close();
  }
  REQUIRE(echod.wait_for_log("no client waits any more (4 taken from the backlog)"));
  CHECK(occurrences(echod.log(), kFullLine) == 1);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("children of closed connections are reaped: no zombies are left") {
  EchodProcess echod = EchodProcess({"--model", "fork"});
  for (int round = 0; round < 5; ++round) {
    std::vector<TestClient> clients = connect_served(echod.port(), 4);
    CHECK(children_of(echod) == 4);
    clients.clear();
    // descendant_pids lists zombies too: an empty list means every child was reaped.
    REQUIRE(eventually([&] { return children_of(echod) == 0; }));
  }
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a child killed by a signal ends its own connection only and frees its slot") {
  EchodProcess echod = start_capped();
  std::vector<TestClient> clients;
  clients.push_back(connect_client(echod.port()));
  REQUIRE(clients[0].echo("first"));
  const std::vector<pid_t> first_child = descendant_pids(echod.pid());
  REQUIRE(first_child.size() == 1);
  clients.push_back(connect_client(echod.port()));
  REQUIRE(clients[1].echo("second"));
  TestClient waiting = connect_waiting(echod.port());

  // SIGTERM to a child ends that child (its default action there), not the server.
  REQUIRE(::kill(first_child.front(), SIGTERM) == 0);
  CHECK(clients[0].is_closed_by_peer(Millis{2000}));
  REQUIRE(receives(waiting, "waiting"));
  CHECK(clients[1].echo("still served"));
  CHECK(echod.running());
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a stop closes every client and leaves no child process behind") {
  EchodProcess echod = start_capped();
  std::vector<TestClient> clients = connect_served(echod.port(), kCap);
  TestClient waiting = connect_client(echod.port());
  const std::vector<ProcessIdentity> children = descendant_identities(echod.pid());
  REQUIRE(children.size() == kCap);

  REQUIRE(echod.stop(Millis{5000}) == 0);
  for (auto& client : clients)
    CHECK(client.is_closed_by_peer(Millis{2000}));
  CHECK(waiting.is_closed_by_peer(Millis{2000}));
  for (const auto& child : children)
    CHECK_FALSE(is_running(child));
}

// Each child holds its own client's socket and no other: a child that inherited another
// client's connection (accepting a batch, then forking for each) would keep that connection
// open after its own child closed it, and the client would never see the FIN.
TEST_CASE("a child holds only its own connection: a half-closed client gets its FIN") {
  constexpr int kClients = 20;
  EchodProcess echod(model_args("fork", {}));
  std::vector<TestClient> clients(kClients);
  for (TestClient& client : clients)  // all at once, so the parent finds several in its backlog
    REQUIRE(client.connect(echod.port()));
  for (int i = 0; i < kClients; ++i)
    REQUIRE(clients[static_cast<std::size_t>(i)].echo("hello " + std::to_string(i)));
  for (const ProcessIdentity& child : running_descendants(echod.pid())) {
    int sockets = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(child.pid) + "/fd")) {
      std::error_code error;
      const auto target = std::filesystem::read_symlink(entry.path(), error);
      if (!error && target.string().rfind("socket:", 0) == 0) ++sockets;
    }
    INFO("child " << child.pid);
    CHECK(sockets == 1);
  }
  // Newest first: under the defect every older child holds a copy of the newest connection.
  for (int i = kClients - 1; i >= 0; --i) {
    TestClient& client = clients[static_cast<std::size_t>(i)];
    INFO("client " << i);
    REQUIRE(client.shutdown_write());
    CHECK(client.is_closed_by_peer(Millis{5000}));
  }
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("fork options are validated") {
  for (const char* argument :
       {"--fork.max-children=0", "--fork.max-children=65537", "--fork.max-children=-1"}) {
    CHECK(option_rejected(
        "fork", argument,
        "'--fork.max-children' is invalid: must be a whole number between 1 and 65536"));
  }
}

// Children run fork.child-nice (default 19) steps nicer than the accepting parent, so the
// parent takes new clients off the backlog first when many busy children keep the core full.
TEST_CASE("children are nicer than the accepting parent") {
  for (const int nice : {-1, 10, 0}) {  // -1: the default
    INFO("fork.child-nice=" << (nice < 0 ? "default (19)" : std::to_string(nice)));
    EchodProcess echod(nice < 0 ? model_args("fork", {})
                                : model_args("fork", {"child-nice=" + std::to_string(nice)}));
    std::vector<TestClient> clients = connect_served(echod.port(), 2);
    const std::vector<ProcessIdentity> children = running_descendants(echod.pid());
    REQUIRE(children.size() == 2);
    const int parent = process_niceness(echod.pid());  // the test runner's, normally 0
    for (const ProcessIdentity& child : children)
      CHECK(process_niceness(child.pid) == std::min(19, parent + (nice < 0 ? 19 : nice)));
    clients.clear();
    REQUIRE(echod.stop() == 0);
  }
  CHECK(option_rejected("fork", "--fork.child-nice=20",
                        "'--fork.child-nice' is invalid: must be a whole number between 0 and 19"));
}
