// Model prefork: prefork.workers workers, each accept lock, respawning a worker that dies,
// nothing left after a stop.
#define CATCH_CONFIG_MAIN
#include <signal.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;

namespace {

constexpr int kWorkers = 3;

EchodProcess start_pool(const std::string& lock = "fcntl") {
  return EchodProcess(
      model_args("prefork", {"workers=" + std::to_string(kWorkers), "accept-lock=" + lock}));
}

std::vector<ProcessIdentity> wait_for_workers(const EchodProcess& echod) {
  std::vector<ProcessIdentity> workers;
  REQUIRE(eventually([&] {
    workers = running_descendants(echod.pid());
    return workers.size() == kWorkers && descendant_pids(echod.pid()).size() == kWorkers;
  }));
  return workers;
}

}  // namespace

TEST_CASE("every accept lock serves prefork.workers clients at once, and the next one waits") {
  const std::string lock = GENERATE(as<std::string>{}, "fcntl", "flock", "none");
  CAPTURE(lock);
  EchodProcess echod = start_pool(lock);
  const std::vector<ProcessIdentity> workers = wait_for_workers(echod);
  echo_concurrently(echod.port(), kWorkers);

  std::vector<TestClient> clients = connect_served(echod.port(), kWorkers);
  // Its handshake completes (the kernel queues it), but every worker is busy.
  TestClient waiting = connect_waiting(echod.port());
  CHECK(not_served_within(waiting, 7));
  CHECK(echod.wait_for_log("all 3 workers busy"));
  clients.back().close();  // frees a worker, which accepts the waiting client
  REQUIRE(receives(waiting, "waiting"));

  // The pool neither grew nor changed: no fork per connection.
  const std::vector<ProcessIdentity> after = running_descendants(echod.pid());
  REQUIRE(after.size() == kWorkers);
  for (const auto& worker : workers) {
    CHECK(std::any_of(after.begin(), after.end(),
                      [&](const auto& w) { return same_process(w, worker); }));
  }
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a worker that dies is replaced, and clients are still served") {
  EchodProcess echod = start_pool();
  const std::vector<ProcessIdentity> before = wait_for_workers(echod);
  // Every worker busy, then two of them die: their slots must not stay counted busy.
  std::vector<TestClient> clients = connect_served(echod.port(), kWorkers);
  for (int victim = 0; victim < 2; ++victim) {
    REQUIRE(::kill(before[victim].pid, SIGKILL) == 0);
  }
  REQUIRE(eventually(
      [&] {
        const std::vector<ProcessIdentity> now = running_descendants(echod.pid());
        const auto replaced = std::count_if(now.begin(), now.end(), [&](const auto& w) {
          return std::none_of(before.begin(), before.end(),
                              [&](const auto& b) { return same_process(w, b); });
        });
        return now.size() == kWorkers && replaced == 2 &&
               descendant_pids(echod.pid()).size() == kWorkers;  // the dead were reaped
      },
      Millis{10000}));  // a worker that dies young is respawned after a delay
  for (int victim = 0; victim < 2; ++victim)
    CHECK_FALSE(is_running(before[victim]));
  CHECK(echod.wait_for_log("respawning"));
  // The killed workers' clients were closed; the survivor's is still served.
  const auto served = std::count_if(clients.begin(), clients.end(), [](TestClient& c) {
    return bool(c.echo("after", Millis{2000}));
  });
  CHECK(served == 1);
  clients.clear();
  echo_concurrently(echod.port(), kWorkers);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a stop closes every client and leaves no worker behind") {
  const std::string lock = GENERATE(as<std::string>{}, "fcntl", "flock", "none");
  CAPTURE(lock);
  EchodProcess echod = start_pool(lock);
  const std::vector<ProcessIdentity> workers = wait_for_workers(echod);
  // Some workers serving, the rest waiting for the lock or the listener.
  std::vector<TestClient> clients = connect_served(echod.port(), kWorkers - 1);
  REQUIRE(echod.stop(Millis{5000}) == 0);
  for (auto& client : clients)
    CHECK(client.is_closed_by_peer(Millis{2000}));
  for (const auto& worker : workers)
    CHECK_FALSE(is_running(worker));
}

TEST_CASE("prefork options are validated") {
  const std::pair<const char*, const char*> cases[] = {
      {"--prefork.workers=0", "prefork.workers must be between 1 and 65536"},
      {"--prefork.accept-lock=spin", "prefork.accept-lock must be fcntl, flock or none"},
  };
  for (const auto& [argument, message] : cases)
    CHECK(option_rejected("prefork", argument, message));
}
