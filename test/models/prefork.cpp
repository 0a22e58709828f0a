// Model prefork: a pool of worker processes that grows with load up to prefork.max and shrinks
// back to prefork.max-spare idle ones, each accept lock, replacing a worker that dies, the
// drain (busy workers finish their client), nothing left after a stop, option validation.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;

namespace {

struct Sizing {
  int start, min_spare, max_spare, max;
};

std::vector<std::string> pool_options(const Sizing& s, const std::string& lock = "fcntl") {
  return {"start=" + std::to_string(s.start), "min-spare=" + std::to_string(s.min_spare),
          "max-spare=" + std::to_string(s.max_spare), "max=" + std::to_string(s.max),
          "accept-lock=" + lock};
}

EchodProcess start_pool(const Sizing& sizing, const std::string& lock = "fcntl",
                        const std::vector<std::string>& other_args = {}) {
  return EchodProcess(model_args("prefork", pool_options(sizing, lock), other_args));
}

std::size_t workers_of(const EchodProcess& echod) {
  return running_descendants(echod.pid()).size();
}

// Waits until exactly `count` workers run and no dead one is left unreaped.
std::vector<ProcessIdentity> wait_for_workers(const EchodProcess& echod, std::size_t count,
                                              Millis timeout = kDefaultTimeout) {
  std::vector<ProcessIdentity> workers;
  const bool settled = eventually(
      [&] {
        workers = running_descendants(echod.pid());
        return workers.size() == count && descendant_pids(echod.pid()).size() == count;
      },
      timeout);
  INFO("workers running: " << workers.size() << ", expected " << count);
  REQUIRE(settled);
  return workers;
}

// Samples the number of workers on a thread until stopped, keeping the largest seen.
class WorkerPeak {
 public:
  explicit WorkerPeak(pid_t pid)
      : sampler_([this, pid] {
          while (!stop_) {
            const auto now = running_descendants(pid).size();
            peak_ = std::max(peak_.load(), now);
            std::this_thread::sleep_for(Millis{5});
          }
        }) {}
  ~WorkerPeak() { stop(); }
  std::size_t stop() {
    stop_ = true;
    if (sampler_.joinable()) sampler_.join();
    return peak_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> peak_{0};
  std::thread sampler_;
};

}  // namespace

TEST_CASE("every accept lock serves prefork.max clients at once, and the next one waits") {
  const std::string lock = GENERATE(as<std::string>{}, "fcntl", "flock", "none");
  CAPTURE(lock);
  EchodProcess echod = start_pool({3, 1, 3, 3}, lock);
  const std::vector<ProcessIdentity> workers = wait_for_workers(echod, 3);
  echo_concurrently(echod.port(), 3);

  std::vector<TestClient> clients = connect_served(echod.port(), 3);
  // Its handshake completes (the kernel queues it), but every worker is busy and the pool is at
  // prefork.max.
  TestClient waiting = connect_waiting(echod.port());
  CHECK(not_served_within(waiting, 7));
  CHECK(echod.wait_for_log("all 3 workers busy (prefork.max)"));
  clients.back().close();  // frees a worker, which accepts the waiting client
  REQUIRE(receives(waiting, "waiting"));

  // The pool did not change: no fork per connection, none past prefork.max.
  const std::vector<ProcessIdentity> after = running_descendants(echod.pid());
  REQUIRE(after.size() == 3);
  for (const auto& worker : workers) {
    CHECK(std::any_of(after.begin(), after.end(),
                      [&](const auto& w) { return same_process(w, worker); }));
  }
  clients.clear();  // a stop drains: echod waits for its clients to leave
  waiting.close();
  REQUIRE(echod.stop() == 0);
}

TEST_CASE(
    "the pool grows past prefork.start under load, never past prefork.max, and shrinks "
    "back to prefork.max-spare idle workers") {
  constexpr int kMax = 10;
  EchodProcess echod = start_pool({2, 1, 2, kMax});
  wait_for_workers(echod, 2);
  WorkerPeak peak(echod.pid());

  // Each client is served while the others stay connected: the pool grows for them.
  std::vector<TestClient> clients = connect_served(echod.port(), kMax - 1);
  CHECK(workers_of(echod) >= kMax - 1);
  // Past prefork.max the next clients wait.
  clients.push_back(connect_client(echod.port()));
  REQUIRE(clients.back().echo("the last one"));
  TestClient waiting = connect_waiting(echod.port());
  CHECK(not_served_within(waiting, 7));
  CHECK(echod.wait_for_log("all 10 workers busy"));
  CHECK(workers_of(echod) == kMax);

  // Everybody leaves: idle workers above max-spare retire, one per second.
  clients.clear();
  REQUIRE(receives(waiting, "waiting"));
  waiting.close();
  wait_for_workers(echod, 2, Millis{30000});
  CHECK(peak.stop() <= kMax);
  // And it stays there.
  std::this_thread::sleep_for(Millis{1500});
  CHECK(workers_of(echod) == 2);
  echo_concurrently(echod.port(), 3);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("with its defaults prefork serves 150 clients held at once") {
  EchodProcess echod({"--model", "prefork"});
  wait_for_workers(echod, 5);
  WorkerPeak peak(echod.pid());
  std::vector<TestClient> clients = connect_served(echod.port(), 150);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    INFO("client " << i);
    REQUIRE(clients[i].echo("again " + std::to_string(i)));
  }
  CHECK(peak.stop() <= 256);
  clients.clear();
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a worker that dies is replaced, and clients are still served") {
  EchodProcess echod = start_pool({3, 1, 3, 3});
  const std::vector<ProcessIdentity> before = wait_for_workers(echod, 3);
  // Every worker busy, then two of them die: their slots must not stay counted busy.
  std::vector<TestClient> clients = connect_served(echod.port(), 3);
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
        return now.size() == 3 && replaced == 2 &&
               descendant_pids(echod.pid()).size() == 3;  // the dead were reaped
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
  echo_concurrently(echod.port(), 3);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("with its defaults an idle worker that is killed is replaced") {
  EchodProcess echod({"--model", "prefork"});
  const std::vector<ProcessIdentity> before = wait_for_workers(echod, 5);
  REQUIRE(::kill(before.front().pid, SIGKILL) == 0);
  REQUIRE(eventually(
      [&] {
        const std::vector<ProcessIdentity> now = running_descendants(echod.pid());
        return now.size() == 5 && descendant_pids(echod.pid()).size() == 5 &&
               std::none_of(now.begin(), now.end(),
                            [&](const auto& w) { return same_process(w, before.front()); });
      },
      Millis{10000}));
  echo_concurrently(echod.port(), 5);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a drain ends idle workers at once and lets busy ones serve their client to the end") {
  const std::string lock = GENERATE(as<std::string>{}, "fcntl", "none");
  CAPTURE(lock);
  EchodProcess echod = start_pool({4, 1, 4, 4}, lock, {"--drain-timeout=20"});
  wait_for_workers(echod, 4);
  std::vector<TestClient> clients = connect_served(echod.port(), 2);

  echod.signal(SIGTERM);
  REQUIRE(echod.wait_for_log("draining"));
  // The two idle workers leave; the two busy ones go on serving.
  wait_for_workers(echod, 2, Millis{3000});
  for (auto& client : clients)
    REQUIRE(client.echo("served while draining"));
  CHECK(echod.running());

  clients[0].close();
  wait_for_workers(echod, 1);
  REQUIRE(clients[1].echo("still served"));
  clients[1].close();
  const auto status = echod.wait_exit(Millis{5000});
  REQUIRE(status.has_value());
  CHECK(*status == 0);
}

TEST_CASE("a stop closes every client and leaves no worker behind") {
  const std::string lock = GENERATE(as<std::string>{}, "fcntl", "flock", "none");
  CAPTURE(lock);
  // No drain: the first signal stops at once.
  EchodProcess echod = start_pool({3, 1, 3, 3}, lock, {"--drain-timeout=0"});
  const std::vector<ProcessIdentity> workers = wait_for_workers(echod, 3);
  // Some workers serving, the rest waiting for the lock or the listener.
  std::vector<TestClient> clients = connect_served(echod.port(), 2);
  REQUIRE(echod.stop(Millis{5000}) == 0);
  for (auto& client : clients)
    CHECK(client.is_closed_by_peer(Millis{2000}));
  for (const auto& worker : workers)
    CHECK_FALSE(is_running(worker));
}

TEST_CASE("prefork options are validated") {
  const std::pair<const char*, const char*> cases[] = {
      {"--prefork.start=0", "'--prefork.start' is invalid"},
      {"--prefork.start=-1", "'--prefork.start' is invalid"},
      {"--prefork.min-spare=99999999999", "'--prefork.min-spare' is invalid"},
      {"--prefork.max-spare=x", "'--prefork.max-spare' is invalid"},
      {"--prefork.max=65537",
       "'--prefork.max' is invalid: must be a whole number between 1 and "
       "65536"},
      {"--prefork.min-spare=20", "prefork.min-spare (20) must not exceed prefork.max-spare (10)"},
      {"--prefork.start=300", "prefork.start (300) must not exceed prefork.max (256)"},
      {"--prefork.max=4", "prefork.min-spare (5) must not exceed prefork.max (4)"},
      {"--prefork.workers=10", "prefork.workers"},  // the old fixed-pool key is gone
      {"--prefork.accept-lock=spin", "prefork.accept-lock must be fcntl, flock or none"},
  };
  for (const auto& [argument, message] : cases)
    CHECK(option_rejected("prefork", argument, message));
}
