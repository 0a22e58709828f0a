// Model thread: its cap (thread.max-threads), joining finished threads, thread.stack-size.
#include <algorithm>
#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;

namespace {

// Threads of an idle echod besides the model's own: its main thread, which runs the model's
// accept loop, and core's drain reporter. Every connection adds exactly one.
constexpr int kCoreThreads = 2;
constexpr int kCap = 4;

long vm_size_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmSize:", 0) == 0) return std::stol(line.substr(7));
  }
  return -1;
}

EchodProcess start_capped(std::vector<std::string> options = {}) {
  options.insert(options.begin(), "max-threads=" + std::to_string(kCap));
  // No drain: a stop closes the clients still connected at once (drains are tested elsewhere).
  return EchodProcess(model_args("thread", options, {"--drain-timeout=0"}));
}

}  // namespace

TEST_CASE("the client past max-threads waits in the backlog until a served one leaves") {
  EchodProcess echod = start_capped();
  REQUIRE(wait_for_thread_count(echod.pid(), kCoreThreads));  // core's threads start with it

  std::vector<TestClient> clients = connect_served(echod.port(), kCap);
  CHECK(thread_count(echod.pid()) == kCoreThreads + kCap);

  // The next client's handshake completes (the kernel queues it), but nobody reads it yet.
  TestClient waiting = connect_waiting(echod.port());
  CHECK(not_served_within(waiting, 7));
  CHECK(thread_count(echod.pid()) == kCoreThreads + kCap);
  for (auto& client : clients)
    REQUIRE(client.echo("still served"));

  // Logged once, when the first client had to wait, and once when none waits any more.
  CHECK(echod.wait_for_log("all 4 threads busy (thread.max-threads)"));
  clients.front().close();
  REQUIRE(receives(waiting, "waiting"));
  CHECK(thread_count(echod.pid()) <= kCoreThreads + kCap);
  clients.back().close();  // a free thread finds the backlog empty: the burst is over
  CHECK(echod.wait_for_log("no client waits any more (1 taken from the backlog)"));
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("the thread count never exceeds max-threads plus the core threads") {
  EchodProcess echod = start_capped();
  constexpr int kClients = 4 * kCap;  // all at once, each doing a few round trips
  std::vector<Outcome> outcomes(kClients);
  std::atomic<int> finished{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < kClients; ++i) {
    workers.emplace_back([&, i] {
      TestClient client;
      outcomes[i] = client.connect(echod.port(), {.timeout = Millis{20000}, .source = {}});
      for (int round = 0; outcomes[i] && round < 20; ++round) {
        outcomes[i] = client.echo(std::to_string(i) + ":" + std::to_string(round), Millis{20000});
      }
      ++finished;
    });
  }
  // Sample the thread count until every client is done (each step is bounded by its timeout).
  int peak = 0;
  while (finished < kClients) {
    peak = std::max(peak, thread_count(echod.pid()));
    std::this_thread::sleep_for(Millis{1});
  }
  for (auto& worker : workers)
    worker.join();
  for (const auto& outcome : outcomes)
    CHECK(outcome);
  CHECK(peak <= kCoreThreads + kCap);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("threads of finished connections are joined, so their slots and stacks are reused") {
  // 1 MiB stacks: a thread that is never joined keeps its stack mapped (VmSize grows).
  EchodProcess echod = start_capped({"stack-size=1024"});
  long first_round_vm = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<TestClient> clients = connect_served(echod.port(), kCap);
    CHECK(thread_count(echod.pid()) == kCoreThreads + kCap);
    if (round == 0) first_round_vm = vm_size_kib(echod.pid());
    clients.clear();
    REQUIRE(wait_for_thread_count(echod.pid(), kCoreThreads));
  }
  // Twenty rounds of leaked threads would add 20 * kCap MiB of stacks.
  CHECK(vm_size_kib(echod.pid()) <= first_round_vm + 2 * 1024);
  // Every slot came back: the cap still admits exactly kCap clients at once.
  std::vector<TestClient> clients = connect_served(echod.port(), kCap);
  TestClient waiting = connect_waiting(echod.port(), "w");
  CHECK(not_served_within(waiting, 1));
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("thread.stack-size sets the stack of every connection thread") {
  EchodProcess echod = start_capped({"stack-size=256"});
  const long idle_vm = vm_size_kib(echod.pid());
  std::vector<TestClient> clients = connect_served(echod.port(), kCap);
  // kCap default stacks (RLIMIT_STACK, 8 MiB here) would add far more than 1 MiB each.
  CHECK(vm_size_kib(echod.pid()) - idle_vm < kCap * 1024);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a stop at the cap closes every served client and joins every thread") {
  EchodProcess echod = start_capped();
  std::vector<TestClient> clients = connect_served(echod.port(), kCap);
  TestClient waiting = connect_client(echod.port());
  REQUIRE(echod.stop(Millis{5000}) == 0);
  for (auto& client : clients)
    CHECK(client.is_closed_by_peer(Millis{2000}));
  CHECK(waiting.is_closed_by_peer(Millis{2000}));
}

TEST_CASE("thread options are validated") {
  const std::pair<const char*, const char*> cases[] = {
      {"--thread.max-threads=0",
       "'--thread.max-threads' is invalid: must be a whole number between 1 and 65536"},
      {"--thread.max-threads=65537",
       "'--thread.max-threads' is invalid: must be a whole number between 1 and 65536"},
      {"--thread.max-threads=-1",
       "'--thread.max-threads' is invalid: must be a whole number between 1 and 65536"},
      {"--thread.stack-size=-1",
       "'--thread.stack-size' is invalid: must be a whole number between 0 and 1048576"},
      {"--thread.stack-size=100", "thread.stack-size must be 0 or between 256"},
  };
  for (const auto& [argument, message] : cases)
    CHECK(option_rejected("thread", argument, message));
}

// Connection threads run thread.connection-nice (default 10) steps nicer than the accepting
// thread, which therefore takes new clients off the backlog first when many busy clients keep
// the core full; 0 leaves every thread equal.
TEST_CASE("connection threads are nicer than the accepting thread") {
  for (const int nice : {10, 0, 19}) {
    INFO("thread.connection-nice=" << nice);
    EchodProcess echod(nice == 10
                           ? model_args("thread", {})
                           : model_args("thread", {"connection-nice=" + std::to_string(nice)}));
    const pid_t pid = echod.pid();
    std::vector<TestClient> clients = connect_served(echod.port(), 3);
    std::vector<int> values = thread_niceness(pid);
    const int base = process_niceness(pid);  // the accepting (main) thread: the test runner's
    const int nicer = std::min(19, base + nice);
    INFO(values.size() << " threads, the accepting thread at " << base);
    CHECK(std::count(values.begin(), values.end(), nicer) >= 3);
    if (nicer != base) {
      CHECK(std::count(values.begin(), values.end(), nicer) == 3);  // the connections' only
      // Every other thread (core's, and a sanitizer runtime's own) stays at the base.
      CHECK(std::count(values.begin(), values.end(), base) == std::ssize(values) - 3);
      CHECK(thread_count(pid) == kCoreThreads + 3);
    }
    clients.clear();
    REQUIRE(echod.stop() == 0);
  }
  CHECK(option_rejected("thread", "--thread.connection-nice=20",
                        "'--thread.connection-nice' is invalid: must be a whole number between 0 "
                        "and 19"));
  CHECK(option_rejected("thread", "--thread.connection-nice=-1",
                        "'--thread.connection-nice' is invalid"));
}
