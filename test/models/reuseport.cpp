// Model reuseport: reuseport.workers listeners and workers (threads or processes), a SIGKILLed
// worker process forked again with no zombie left, the stop reaching every worker, and
// steer=cpu pinning worker i to CPU i with the kernel handing it the connections of CPU i.
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "echod_test.hpp"

using namespace echod::test;

namespace {

// Sockets listening on `port` on 127.0.0.1, from /proc/net/tcp (state 0A is LISTEN).
int listeners_on(std::uint16_t port) {
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // header
  int count = 0;
  char wanted[16];
  std::snprintf(wanted, sizeof wanted, ":%04X", port);
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == wanted) ++count;
  }
  return count;
}

// The Cpus_allowed_list line of /proc/PID/status (or /proc/PID/task/TID/status).
std::string cpus_allowed(const std::string& status_path) {
  std::ifstream status(status_path);
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Cpus_allowed_list:", 0) == 0) {
      const auto value = line.find_first_not_of(" \t", 18);
      return value == std::string::npos ? "" : line.substr(value);
    }
  }
  return "";
}

std::vector<ProcessIdentity> wait_for_workers(const EchodProcess& echod, std::size_t count) {
  std::vector<ProcessIdentity> workers;
  const bool settled = eventually([&] {
    workers = running_descendants(echod.pid());
    return workers.size() == count && descendant_pids(echod.pid()).size() == count;
  });
  INFO("worker processes: " << workers.size() << " running, " << descendant_pids(echod.pid()).size()
                            << " descendants, expected " << count);
  REQUIRE(settled);
  return workers;
}

}  // namespace

TEST_CASE("by default one worker per CPU echod may run on (its affinity mask)") {
  cpu_set_t all;
  REQUIRE(::sched_getaffinity(0, sizeof all, &all) == 0);
  const int usable = CPU_COUNT(&all);
  const int allowed = GENERATE(1, 2);
  if (allowed > usable) return;  // a one-CPU machine: only the first case applies
  CAPTURE(usable, allowed);
  // echod inherits the mask of the thread that starts it, as under `taskset`.
  cpu_set_t narrowed;
  CPU_ZERO(&narrowed);
  for (int cpu = 0, taken = 0; cpu < CPU_SETSIZE && taken < allowed; ++cpu) {
    if (CPU_ISSET(cpu, &all)) {
      CPU_SET(cpu, &narrowed);
      ++taken;
    }
  }
  REQUIRE(::sched_setaffinity(0, sizeof narrowed, &narrowed) == 0);
  EchodProcess echod(model_args("reuseport", {"mode=processes"}));
  REQUIRE(::sched_setaffinity(0, sizeof all, &all) == 0);
  REQUIRE(listeners_on(echod.port()) == allowed);
  wait_for_workers(echod, static_cast<std::size_t>(allowed));
  echo_concurrently(echod.port(), 8);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("reuseport.workers listeners, and as many worker threads or processes") {
  const std::string mode = GENERATE(as<std::string>{}, "threads", "processes");
  const int workers = GENERATE(1, 3);
  CAPTURE(mode, workers);
  EchodProcess echod(
      model_args("reuseport", {"mode=" + mode, "workers=" + std::to_string(workers)}));
  const int listening = listeners_on(echod.port());
  std::printf("mode=%s workers=%d: %d listeners on port %u, %d threads, %zu children\n",
              mode.c_str(), workers, listening, echod.port(), thread_count(echod.pid()),
              descendant_pids(echod.pid()).size());
  CHECK(listening == workers);
  if (mode == "processes") {
    wait_for_workers(echod, static_cast<std::size_t>(workers));
  } else {
    // main thread, core's drain reporter, and the workers
    CHECK(wait_for_thread_count(echod.pid(), 2 + workers));
    CHECK(descendant_pids(echod.pid()).empty());
  }
  echo_concurrently(echod.port(), 4 * workers);
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("processes: a SIGKILLed worker is forked again, its connections released, no zombie") {
  EchodProcess echod(
      model_args("reuseport", {"mode=processes", "workers=3"}, {"--max-connections=40"}));
  const std::vector<ProcessIdentity> before = wait_for_workers(echod, 3);
  std::vector<TestClient> clients = echo_concurrently(echod.port(), 30);

  REQUIRE(::kill(before[0].pid, SIGKILL) == 0);
  REQUIRE(echod.wait_for_log("killed by SIGKILL; forking it again"));
  const std::vector<ProcessIdentity> after = wait_for_workers(echod, 3);
  CHECK_FALSE(is_running(before[0]));
  int kept = 0;
  for (const auto& worker : after) {
    if (same_process(worker, before[1]) || same_process(worker, before[2])) ++kept;
  }
  std::printf("killed worker %d; workers now %zu (%d of them from before), zombies: %c\n",
              before[0].pid, after.size(), kept, process_state(before[0].pid) == 'Z' ? 'y' : 'n');
  CHECK(kept == 2);
  CHECK(process_state(before[0].pid) != 'Z');

  // The killed worker's places were released: 40 clients fit again beside the survivors'.
  int survivors = 0;
  for (auto& client : clients) {
    if (client.echo("still here")) ++survivors;
  }
  clients.clear();
  // The survivors release their places when they see the closes: wait until every worker holds
  // as many descriptors as the one forked again, which never had a client.
  const auto fresh = std::find_if(after.begin(), after.end(), [&](const ProcessIdentity& w) {
    return !same_process(w, before[1]) && !same_process(w, before[2]);
  });
  REQUIRE(fresh != after.end());
  REQUIRE(eventually([&] {
    const int idle_count = open_fd_count(fresh->pid);
    return std::all_of(after.begin(), after.end(), [&](const ProcessIdentity& w) {
      return open_fd_count(w.pid) == idle_count;
    });
  }));
  std::vector<TestClient> again = echo_concurrently(echod.port(), 40);
  std::printf("clients that survived the kill: %d of 30; 40 new clients served\n", survivors);
  CHECK(survivors < 30);  // the killed worker held some of them
  again.clear();
  REQUIRE(echod.stop() == 0);
  CHECK(descendant_pids(echod.pid()).empty());
}

TEST_CASE("the stop reaches every worker") {
  const std::string mode = GENERATE(as<std::string>{}, "threads", "processes");
  CAPTURE(mode);
  EchodProcess echod(model_args("reuseport", {"mode=" + mode, "workers=4"}));
  std::vector<TestClient> clients = echo_concurrently(echod.port(), 40);
  if (mode == "processes") {
    const auto workers = wait_for_workers(echod, 4);
    int serving = 0;
    for (const auto& w : workers) {
      if (open_fd_count(w.pid) > 10) ++serving;  // its listener and loop, plus clients
    }
    std::printf("worker processes with clients: %d of 4\n", serving);
  }
  echod.signal(SIGTERM);  // drain: every worker keeps serving its clients
  REQUIRE(echod.wait_for_log("draining"));
  for (auto& client : clients)
    REQUIRE(client.echo("during the drain"));
  echod.signal(SIGTERM);  // stop now: every worker finishes its connections
  int closed = 0;
  for (auto& client : clients) {
    if (client.is_closed_by_peer()) ++closed;
  }
  std::printf("mode=%s: %d of 40 clients closed by the stop\n", mode.c_str(), closed);
  CHECK(closed == 40);
  const auto status = echod.wait_exit(Millis{10000});
  REQUIRE(status);
  CHECK(*status == 0);
  CHECK(descendant_pids(echod.pid()).empty());
}

TEST_CASE("steer=cpu attaches the CPU program and pins worker i to CPU i") {
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  const int workers = cpus >= 2 ? 2 : 1;
  EchodProcess echod(model_args(
      "reuseport", {"mode=processes", "steer=cpu", "workers=" + std::to_string(workers)}));
  REQUIRE(echod.wait_for_log("steer: cpu"));
  const auto pids = wait_for_workers(echod, static_cast<std::size_t>(workers));
  // Which worker is which: worker i is pinned to CPU i.
  std::vector<pid_t> worker_on_cpu(static_cast<std::size_t>(workers), 0);
  for (const auto& w : pids) {
    // A forked worker pins itself first thing, but the fork is visible before that.
    const std::string status = "/proc/" + std::to_string(w.pid) + "/status";
    std::string allowed;
    const bool pinned = eventually([&] { return (allowed = cpus_allowed(status)).size() == 1; });
    std::printf("worker %d: Cpus_allowed_list %s\n", w.pid, allowed.c_str());
    REQUIRE(pinned);
    const int cpu = allowed[0] - '0';
    REQUIRE(cpu < workers);
    worker_on_cpu[static_cast<std::size_t>(cpu)] = w.pid;
  }
  for (int cpu = 0; cpu < workers; ++cpu)
    REQUIRE(worker_on_cpu[static_cast<std::size_t>(cpu)] != 0);

  // A connection made from CPU c arrives on CPU c (loopback), so worker c accepts it.
  for (int cpu = 0; cpu < workers; ++cpu) {
    const pid_t worker = worker_on_cpu[static_cast<std::size_t>(cpu)];
    std::vector<int> fds_before;
    for (int i = 0; i < workers; ++i)
      fds_before.push_back(open_fd_count(worker_on_cpu[static_cast<std::size_t>(i)]));
    std::vector<TestClient> clients;
    std::thread pinned([&] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      ::sched_setaffinity(0, sizeof set, &set);
      for (int i = 0; i < 8; ++i) {
        TestClient client;
        if (client.connect(echod.port()) && client.echo("from cpu " + std::to_string(cpu)))
          clients.push_back(std::move(client));
      }
    });
    pinned.join();
    REQUIRE(clients.size() == 8);
    const int gained = open_fd_count(worker) - fds_before[static_cast<std::size_t>(cpu)];
    std::printf("8 clients connected from CPU %d: worker on CPU %d gained %d descriptors\n", cpu,
                cpu, gained);
    CHECK(gained == 8);
  }
  REQUIRE(echod.stop() == 0);
}

TEST_CASE("reuseport option values are checked") {
  CHECK(option_rejected("reuseport", "--reuseport.mode=fibers",
                        "reuseport.mode must be threads or processes"));
  CHECK(option_rejected("reuseport", "--reuseport.steer=random",
                        "reuseport.steer must be hash or cpu"));
}
