// Model prethread: a fixed pool of prethread.threads threads, with either accept lock.
#define CATCH_CONFIG_MAIN
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;

namespace {

// Threads of echod besides the pool: its main thread, which waits for the stop.
constexpr int kCoreThreads = 1;
constexpr int kPool = 4;

std::vector<std::string> pool_args(const std::string& lock) {
  return model_args("prethread", {"threads=" + std::to_string(kPool), "accept-lock=" + lock});
}

// The pool starts right after the listening line; waits until it is complete.
void wait_for_pool(const EchodProcess& echod) {
  REQUIRE(wait_for_thread_count(echod.pid(), kCoreThreads + kPool));
}

}  // namespace

TEST_CASE("both accept locks serve clients concurrently") {
  const std::string lock = GENERATE(as<std::string>{}, "mutex", "none");
  CAPTURE(lock);
  EchodProcess echod(pool_args(lock));
  wait_for_pool(echod);

  // The clients stay connected while the threads are counted.
  const std::vector<TestClient> clients = echo_concurrently(echod.port(), kPool);
  CHECK(thread_count(echod.pid()) == kCoreThreads + kPool);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("exactly prethread.threads clients are served at once, and the next waits for a thread") {
  const std::string lock = GENERATE(as<std::string>{}, "mutex", "none");
  CAPTURE(lock);
  EchodProcess echod(pool_args(lock));
  wait_for_pool(echod);

  std::vector<TestClient> clients = connect_served(echod.port(), kPool);
  // Its handshake completes (the kernel queues it), but no thread is free to read it.
  TestClient waiting = connect_waiting(echod.port());
  CHECK(not_served_within(waiting, 7));
  for (auto& client : clients)
    REQUIRE(client.echo("still served"));

  CHECK(echod.wait_for_log("all 4 threads busy"));
  clients.back().close();  // frees one thread, which accepts the waiting client
  REQUIRE(receives(waiting, "waiting"));

  // The pool never grows or shrinks.
  CHECK(thread_count(echod.pid()) == kCoreThreads + kPool);
  clients.clear();
  waiting.close();
  std::this_thread::sleep_for(Millis{100});
  CHECK(thread_count(echod.pid()) == kCoreThreads + kPool);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a stop reaches threads waiting for the accept lock and threads serving clients") {
  const std::string lock = GENERATE(as<std::string>{}, "mutex", "none");
  CAPTURE(lock);
  EchodProcess echod(pool_args(lock));
  wait_for_pool(echod);
  // Half the pool serving, half waiting (in mutex mode: one in poll, the rest on the mutex).
  std::vector<TestClient> clients = connect_served(echod.port(), kPool / 2);
  REQUIRE(echod.stop(Millis{5000}) == 0);
  for (auto& client : clients)
    CHECK(client.is_closed_by_peer(Millis{2000}));
}

TEST_CASE("prethread options are validated") {
  const std::pair<const char*, const char*> cases[] = {
      {"--prethread.threads=0", "prethread.threads must be between 1 and 65536"},
      {"--prethread.accept-lock=spin", "prethread.accept-lock must be 'mutex' or 'none'"},
  };
  for (const auto& [argument, message] : cases)
    CHECK(option_rejected("prethread", argument, message));
}
