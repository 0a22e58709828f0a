// Model prethread: a pool of threads that grows with load up to prethread.max and shrinks back
// to prethread.max-spare idle ones, with either accept lock, the drain (busy threads finish
// their client), every thread joined at a stop, option validation.
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

// Threads of echod besides the pool: its main thread, which manages the pool, and core's drain
// reporter.
constexpr int kCoreThreads = 2;

struct Sizing {
  int start, min_spare, max_spare, max;
};

EchodProcess start_pool(const Sizing& s, const std::string& lock = "mutex",
                        const std::vector<std::string>& other_args = {}) {
  return EchodProcess(
      model_args("prethread",
                 {"start=" + std::to_string(s.start), "min-spare=" + std::to_string(s.min_spare),
                  "max-spare=" + std::to_string(s.max_spare), "max=" + std::to_string(s.max),
                  "accept-lock=" + lock},
                 other_args));
}

int pool_threads(const EchodProcess& echod) {
  return thread_count(echod.pid()) - kCoreThreads;
}

void wait_for_pool(const EchodProcess& echod, int threads, Millis timeout = kDefaultTimeout) {
  REQUIRE(wait_for_thread_count(echod.pid(), kCoreThreads + threads, timeout));
}

// Samples the pool's size on a thread until stopped, keeping the largest seen.
class ThreadPeak {
 public:
  explicit ThreadPeak(pid_t pid)
      : sampler_([this, pid] {
          while (!stop_) {
            peak_ = std::max(peak_.load(), thread_count(pid) - kCoreThreads);
            std::this_thread::sleep_for(Millis{5});
          }
        }) {}
  ~ThreadPeak() { stop(); }
  int stop() {
    stop_ = true;
    if (sampler_.joinable()) sampler_.join();
    return peak_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> peak_{0};
  std::thread sampler_;
};

}  // namespace

TEST_CASE("prethread.max clients are served at once, and the next waits for a thread") {
  const std::string lock = GENERATE(as<std::string>{}, "mutex", "none");
  CAPTURE(lock);
  EchodProcess echod = start_pool({4, 1, 4, 4}, lock);
  wait_for_pool(echod, 4);

  std::vector<TestClient> clients = connect_served(echod.port(), 4);
  // Its handshake completes (the kernel queues it), but no thread is free to read it.
  TestClient waiting = connect_waiting(echod.port());
  CHECK(not_served_within(waiting, 7));
  for (auto& client : clients)
    REQUIRE(client.echo("still served"));

  CHECK(echod.wait_for_log("all 4 threads busy (prethread.max)"));
  clients.back().close();  // frees one thread, which accepts the waiting client
  REQUIRE(receives(waiting, "waiting"));
  CHECK(pool_threads(echod) == 4);
  clients.clear();  // a stop drains: echod waits for its clients to leave
  waiting.close();
  REQUIRE(echod.stop() == 0);
}

TEST_CASE(
    "the pool grows past prethread.start under load, never past prethread.max, and "
    "shrinks back to prethread.max-spare idle threads") {
  const std::string lock = GENERATE(as<std::string>{}, "mutex", "none");
  CAPTURE(lock);
  constexpr int kMax = 12;
  EchodProcess echod = start_pool({2, 1, 3, kMax}, lock);
  wait_for_pool(echod, 2);
  ThreadPeak peak(echod.pid());

  std::vector<TestClient> clients = connect_served(echod.port(), kMax);
  CHECK(pool_threads(echod) == kMax);
  TestClient waiting = connect_waiting(echod.port());
  CHECK(not_served_within(waiting, 7));
  CHECK(echod.wait_for_log("all 12 threads busy"));

  // Everybody leaves: idle threads above max-spare retire, one per second, and are joined.
  clients.clear();
  REQUIRE(receives(waiting, "waiting"));
  waiting.close();
  wait_for_pool(echod, 3, Millis{30000});
  CHECK(peak.stop() <= kMax);
  std::this_thread::sleep_for(Millis{1500});
  CHECK(pool_threads(echod) == 3);
  echo_concurrently(echod.port(), 4);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("with its defaults prethread serves 150 clients held at once") {
  EchodProcess echod({"--model", "prethread"});
  wait_for_pool(echod, 8);
  ThreadPeak peak(echod.pid());
  std::vector<TestClient> clients = connect_served(echod.port(), 150);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    INFO("client " << i);
    REQUIRE(clients[i].echo("again " + std::to_string(i)));
  }
  CHECK(peak.stop() <= 256);
  clients.clear();
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("a drain ends idle threads at once and lets busy ones serve their client to the end") {
  const std::string lock = GENERATE(as<std::string>{}, "mutex", "none");
  CAPTURE(lock);
  EchodProcess echod = start_pool({4, 1, 4, 4}, lock, {"--drain-timeout=20"});
  wait_for_pool(echod, 4);
  std::vector<TestClient> clients = connect_served(echod.port(), 2);

  echod.signal(SIGTERM);
  REQUIRE(echod.wait_for_log("draining"));
  wait_for_pool(echod, 2, Millis{3000});  // the idle ones were joined
  for (auto& client : clients)
    REQUIRE(client.echo("served while draining"));
  CHECK(echod.running());

  clients[0].close();
  wait_for_pool(echod, 1);
  REQUIRE(clients[1].echo("still served"));
  clients[1].close();
  const auto status = echod.wait_exit(Millis{5000});
  REQUIRE(status.has_value());
  CHECK(*status == 0);
}

TEST_CASE("a stop reaches threads waiting for the accept lock and threads serving clients") {
  const std::string lock = GENERATE(as<std::string>{}, "mutex", "none");
  CAPTURE(lock);
  // No drain: the first signal stops at once.
  EchodProcess echod = start_pool({4, 1, 4, 4}, lock, {"--drain-timeout=0"});
  wait_for_pool(echod, 4);
  // Half the pool serving, half waiting (in mutex mode: one in poll, the rest on the mutex).
  std::vector<TestClient> clients = connect_served(echod.port(), 2);
  REQUIRE(echod.stop(Millis{5000}) == 0);
  for (auto& client : clients)
    CHECK(client.is_closed_by_peer(Millis{2000}));
}

TEST_CASE("prethread options are validated") {
  const std::pair<const char*, const char*> cases[] = {
      {"--prethread.start=0", "'--prethread.start' is invalid"},
      {"--prethread.start=-1", "'--prethread.start' is invalid"},
      {"--prethread.max-spare=99999999999", "'--prethread.max-spare' is invalid"},
      {"--prethread.min-spare=1.5", "'--prethread.min-spare' is invalid"},
      {"--prethread.max=65537",
       "'--prethread.max' is invalid: must be a whole number between 1 "
       "and 65536"},
      {"--prethread.min-spare=17",
       "prethread.min-spare (17) must not exceed prethread.max-spare "
       "(16)"},
      {"--prethread.start=257", "prethread.start (257) must not exceed prethread.max (256)"},
      {"--prethread.max=7", "prethread.min-spare (8) must not exceed prethread.max (7)"},
      {"--prethread.threads=40", "prethread.threads"},  // the old fixed-pool key is gone
      {"--prethread.accept-lock=spin", "prethread.accept-lock must be 'mutex' or 'none'"},
  };
  for (const auto& [argument, message] : cases)
    CHECK(option_rejected("prethread", argument, message));
}
