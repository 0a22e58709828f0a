// The C10K soak (issue 16): 10,000 connections, each sending one 64-byte message a second, held
// by `echo-bench hold` against every model that declares `event-driven`. Zero errors, every
// connection open at the end, and echod's RSS at the end within 5% of its RSS 10 s into the run
// (memory that grows with time, not with connections, is a leak). The hold lasts
// ECHOD_SOAK_SECONDS (default 20; 60 for the full run in docs/reliability.md).
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "echod_test.hpp"

#ifndef ECHO_BENCH_BINARY
#error "ECHO_BENCH_BINARY (the echo-bench that holds the connections) is set by CMake"
#endif

using namespace echod::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A forking model holds its connections in its workers: count the whole process tree.
int tree_fd_count(pid_t pid) {
  int count = open_fd_count(pid);
  for (const ProcessIdentity& child : running_descendants(pid))
    count += std::max(0, open_fd_count(child.pid));
  return count;
}

int soak_seconds() {
  const char* value = std::getenv("ECHOD_SOAK_SECONDS");
  const int seconds = value != nullptr ? std::atoi(value) : 20;
  return seconds >= 12 ? seconds : 12;  // past the 10 s reference sample
}

struct Sample {
  double at_seconds;  // since echo-bench started
  long rss_kib;       // echod and its descendants
  int fds;            // open descriptors of echod and its descendants (forked workers)
};

}  // namespace

TEST_CASE("C10K: 10,000 connections each sending 64 bytes a second", "[event-driven]") {
  constexpr int kConnections = 10000;
  const int seconds = soak_seconds();
  EchodProcess server = start_echod();
  const pid_t pid = server.pid();
  const std::string json_path =
      "/tmp/echod-soak-" + std::to_string(::getpid()) + "-" + suite_target().model + ".json";
  const std::vector<std::string> bench_args{"hold",
                                            "127.0.0.1:" + std::to_string(server.port()),
                                            "-c",
                                            std::to_string(kConnections),
                                            "-s",
                                            "64",
                                            "-i",
                                            "1s",
                                            "-d",
                                            std::to_string(seconds) + "s",
                                            "--warmup",
                                            "1s",
                                            "--json",
                                            json_path,
                                            "--server-pid",
                                            std::to_string(pid),
                                            "--max-time",
                                            std::to_string(seconds + 60) + "s",
                                            "-q"};
  const long idle_kib = memory_kib(pid);
  std::atomic<bool> bench_done{false};
  RunResult bench;
  const auto start = Clock::now();
  std::jthread runner([&] {
    bench = run_echod(bench_args, Millis{(seconds + 90) * 1000}, ECHO_BENCH_BINARY);
    bench_done = true;
  });
  std::vector<Sample> samples;
  while (!bench_done) {
    const double at = std::chrono::duration<double>(Clock::now() - start).count();
    samples.push_back(Sample{at, memory_kib(pid), tree_fd_count(pid)});
    std::this_thread::sleep_for(250ms);
  }
  runner.join();

  // The reference: the first sample at 10 s or later. The end: the last sample with every
  // connection still open on echod's side (echo-bench closes them all once it is done).
  std::optional<Sample> at_ten;
  std::optional<Sample> at_end;
  int peak_fds = 0;
  for (const Sample& sample : samples) {
    peak_fds = std::max(peak_fds, sample.fds);
    if (sample.fds < kConnections) continue;
    if (!at_ten && sample.at_seconds >= 10.0) at_ten = sample;
    at_end = sample;
  }
  nlohmann::json report;
  std::string parse_error;
  try {
    std::ifstream file(json_path);
    report = nlohmann::json::parse(file);
  } catch (const std::exception& error) {
    parse_error = error.what();
  }
  ::unlink(json_path.c_str());
  const auto number = [&](const char* object, const char* key) -> long long {
    if (!report.contains(object) || !report[object].contains(key)) return -1;
    return report[object][key].get<long long>();
  };
  std::ostringstream text;
  text << "soak " << seconds << " s, " << kConnections << " connections x 64 B/s: echo-bench exit "
       << (bench.exit_status ? std::to_string(*bench.exit_status) : std::string("none"))
       << ", established " << number("connections", "established") << ", open at end "
       << number("connections", "open_at_end") << ", messages sent " << number("messages", "sent")
       << " echoed " << number("messages", "echoed") << " unanswered "
       << number("messages", "unanswered") << ", errors " << number("errors", "total")
       << "; descriptors of echod and its workers, peak " << peak_fds << "; RSS idle " << idle_kib
       << " KiB, at " << (at_ten ? at_ten->at_seconds : -1) << " s "
       << (at_ten ? at_ten->rss_kib : -1) << " KiB, at " << (at_end ? at_end->at_seconds : -1)
       << " s " << (at_end ? at_end->rss_kib : -1) << " KiB";
  if (at_ten && at_end && at_ten->rss_kib > 0) {
    text << " ("
         << 100.0 * static_cast<double>(at_end->rss_kib - at_ten->rss_kib) /
                static_cast<double>(at_ten->rss_kib)
         << "%)";
  }
  if (report.contains("cpu") && report["cpu"].contains("server") &&
      !report["cpu"]["server"].is_null()) {
    text << "; server CPU " << report["cpu"]["server"].dump();
  }
  std::cout << "figures: " << suite_target().model << ": " << text.str() << std::endl;
  INFO(text.str());
  INFO("echo-bench stdout: " << bench.out << "\nstderr: " << bench.err);
  REQUIRE(parse_error.empty());
  REQUIRE(bench.exit_status.has_value());
  REQUIRE(*bench.exit_status == 0);
  REQUIRE(number("errors", "total") == 0);
  REQUIRE(number("connections", "established") == kConnections);
  REQUIRE(number("connections", "open_at_end") == kConnections);
  REQUIRE(number("messages", "unanswered") == 0);
  REQUIRE(number("messages", "echoed") >= static_cast<long long>(kConnections) * (seconds - 1));
  REQUIRE(at_ten.has_value());
  REQUIRE(at_end.has_value());
  REQUIRE(at_end->at_seconds >= seconds);  // held to the end of the measured time
  REQUIRE(at_end->rss_kib * 100 <= at_ten->rss_kib * 105);
  const std::optional<ExitStatus> status = server.stop(Millis{15000});
  REQUIRE(status.has_value());
  REQUIRE(*status == 0);
}
