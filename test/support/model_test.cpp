#include "model_test.hpp"

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "echod_process.hpp"

namespace echod::test {

bool eventually(const std::function<bool()>& done, Millis timeout, Millis poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

Outcome wait_for_thread_count(pid_t pid, int count, Millis timeout) {
  int now = 0;
  if (eventually([&] { return (now = thread_count(pid)) == count; }, timeout)) return {};
  return Outcome::failure("process " + std::to_string(pid) + " has " + std::to_string(now) +
                          " threads, not " + std::to_string(count) + ", after " +
                          std::to_string(timeout.count()) + " ms");
}

std::vector<std::string> model_args(const std::string& model,
                                    const std::vector<std::string>& model_options,
                                    const std::vector<std::string>& other_args) {
  std::vector<std::string> args{"--model", model};
  for (const std::string& option : model_options)
    args.push_back("--" + model + "." + option);
  args.insert(args.end(), other_args.begin(), other_args.end());
  return args;
}

std::vector<TestClient> connect_served(std::uint16_t port, int count) {
  std::vector<TestClient> clients;
  for (int i = 0; i < count; ++i) {
    clients.push_back(connect_client(port));
    REQUIRE(clients.back().echo("client " + std::to_string(i)));
  }
  return clients;
}

std::vector<TestClient> echo_concurrently(std::uint16_t port, int count, int rounds) {
  std::vector<TestClient> clients;
  for (int i = 0; i < count; ++i)
    clients.push_back(connect_client(port));
  for (int round = 0; round < rounds; ++round) {
    for (int i = count - 1; i >= 0; --i) {
      REQUIRE(clients[static_cast<std::size_t>(i)].echo("client " + std::to_string(i) + " round " +
                                                        std::to_string(round)));
    }
  }
  return clients;
}

TestClient connect_waiting(std::uint16_t port, std::string_view message) {
  TestClient client = connect_client(port);
  REQUIRE(client.send_all(message));
  return client;
}

Outcome not_served_within(TestClient& client, std::size_t size, Millis wait) {
  const Received received = client.recv_exact(size, wait);
  if (!received) return {};
  return Outcome::failure("served: " + std::to_string(size) + " bytes came back within " +
                          std::to_string(wait.count()) + " ms");
}

Outcome receives(TestClient& client, std::string_view expected, Millis timeout) {
  const Received received = client.recv_exact(expected.size(), timeout);
  if (!received) return received;
  return same_bytes(received.data, expected);
}

std::vector<ProcessIdentity> descendant_identities(pid_t pid) {
  std::vector<ProcessIdentity> processes;
  for (pid_t descendant : descendant_pids(pid)) {
    if (auto identity = identify(descendant)) processes.push_back(*identity);
  }
  return processes;
}

std::vector<ProcessIdentity> running_descendants(pid_t pid) {
  std::vector<ProcessIdentity> processes;
  for (const ProcessIdentity& process : descendant_identities(pid)) {
    if (is_running(process)) processes.push_back(process);
  }
  return processes;
}

bool same_process(const ProcessIdentity& a, const ProcessIdentity& b) {
  return a.pid == b.pid && a.start_ticks == b.start_ticks;
}

std::size_t push_until_blocked(TestClient& client, const std::string& chunk, Millis quiet,
                               std::size_t cap) {
  using Clock = std::chrono::steady_clock;
  std::size_t pushed = 0;
  auto last_progress = Clock::now();
  while (pushed < cap && Clock::now() - last_progress < quiet) {
    const std::ptrdiff_t n = client.try_send(chunk);
    if (n < 0) break;
    if (n > 0) {
      pushed += static_cast<std::size_t>(n);
      last_progress = Clock::now();
    } else {
      std::this_thread::sleep_for(Millis{1});
    }
  }
  return pushed;
}

Outcome ping_pongs(TestClient& client, Rng& rng, int count, Millis each) {
  for (int i = 0; i < count; ++i) {
    const std::string message = rng.bytes(rng.between(1, 1000));
    if (Outcome echoed = client.echo(message, each); !echoed) {
      return Outcome::failure("ping-pong " + std::to_string(i) + " of " +
                              std::to_string(message.size()) + " bytes: " + echoed.error);
    }
  }
  return {};
}

Outcome option_rejected(const std::string& model, const std::string& argument,
                        std::string_view message) {
  const RunResult result = run_echod({"--model", model, "--port", "0", argument});
  std::string error;
  if (result.exit_status != 2) {
    error = "exit status " +
            (result.exit_status ? std::to_string(*result.exit_status) : "none (killed)") +
            ", expected 2; ";
  }
  if (result.err.find(message) == std::string::npos) {
    error += "stderr lacks \"" + std::string(message) + "\"; ";
  }
  if (error.empty()) return {};
  return Outcome::failure(error + "stderr: " + result.err);
}

}  // namespace echod::test
