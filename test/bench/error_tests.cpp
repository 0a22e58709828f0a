// echo-bench against servers that misbehave: each failure is counted under its own kind, makes
// the exit status non-zero, and the run still ends by itself within its bound.
#include <catch2/catch.hpp>

#include <string>

#include "bench_run.hpp"
#include "test_server.hpp"

namespace {

using echod::bench::test::BenchRun;
using echod::bench::test::ClosedPort;
using echod::bench::test::run_bench;
using echod::bench::test::TestServer;

// Ended by itself, with exit status 1 (errors) and a parseable report.
void require_failed_run(const BenchRun& run) {
  INFO("echo-bench table:\n" << run.table);
  REQUIRE(run.exit_status.has_value());
  REQUIRE(run.json_error.empty());
  CHECK(*run.exit_status == 1);
  CHECK(run.get<int>("exit_status") == 1);
}

std::uint64_t errors_of(const BenchRun& run, const std::string& kind) {
  return run.get<std::uint64_t>("errors." + kind);
}

}  // namespace

TEST_CASE("a server that corrupts the echo is caught as a mismatch") {
  TestServer server(TestServer::Mode::kCorrupt, {1000});  // flips one byte in every 1000
  const BenchRun run =
      run_bench("steady", server.port_text(), {"-c", "4", "-d", "1", "--warmup", "0"});
  require_failed_run(run);
  CHECK(run.get<std::string>("status") == "errors");
  CHECK(errors_of(run, "mismatch") >= 1);
  CHECK(errors_of(run, "total") == errors_of(run, "mismatch"));
  CHECK_FALSE(run.is_null("errors.first_mismatch"));
  CHECK(run.table.find("mismatch") != std::string::npos);
  CHECK(run.table.find("first bad") != std::string::npos);
}

TEST_CASE("a corrupted byte is caught in every workload") {
  TestServer server(TestServer::Mode::kCorrupt, {500});
  for (const auto& [workload, args] :
       {std::pair<std::string, std::vector<std::string>>{"churn", {"-w", "2", "-a", "20"}},
        {"hold", {"-c", "50", "-d", "1", "-i", "0.2", "--warmup", "0"}},
        {"burst", {"-c", "50", "--parts", "2"}}}) {
    INFO("workload " << workload);
    const BenchRun run = run_bench(workload, server.port_text(), args);
    require_failed_run(run);
    CHECK(errors_of(run, "mismatch") >= 1);
  }
}

TEST_CASE("a server that never answers ends in reply timeouts, within the bound") {
  TestServer server(TestServer::Mode::kSilent);
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "3", "-d", "5", "--warmup", "0", "--timeout", "1"});
  require_failed_run(run);
  CHECK(errors_of(run, "reply_timeout") == 3);
  CHECK(errors_of(run, "total") == 3);
  CHECK(run.get<std::uint64_t>("messages.unanswered") == 3);
  CHECK(run.get<std::uint64_t>("messages.lost") == 3);
  CHECK(run.get<std::uint64_t>("messages.cut_short") == 0);
  CHECK(run.get<std::uint64_t>("messages.echoed") == 0);
  CHECK(run.get<double>("wall_seconds") < 10);
}

TEST_CASE("churn against a server that never answers also times out and ends") {
  TestServer server(TestServer::Mode::kSilent);
  const BenchRun run =
      run_bench("churn", server.port_text(), {"-w", "2", "-a", "2", "--timeout", "0.5"});
  require_failed_run(run);
  CHECK(errors_of(run, "reply_timeout") == 4);
  CHECK(run.get<double>("wall_seconds") < 10);
}

TEST_CASE("burst against a server that never answers ends after the reply timeout") {
  TestServer server(TestServer::Mode::kSilent);
  const BenchRun run =
      run_bench("burst", server.port_text(), {"-c", "5", "--parts", "3", "--timeout", "1"});
  require_failed_run(run);
  CHECK(errors_of(run, "reply_timeout") == 5);
  CHECK(run.get<double>("wall_seconds") < 10);
}

TEST_CASE("a server that never accepts ends in connect timeouts, within the bound") {
  TestServer server(TestServer::Mode::kNeverAccept);
  const BenchRun run = run_bench(
      "steady", server.port_text(),
      {"-c", "5", "-d", "1", "--warmup", "0", "--connect-timeout", "1", "--timeout", "1"});
  require_failed_run(run);
  // The backlog lets a handshake or two complete (those then wait for replies); the rest never
  // connect.
  CHECK(errors_of(run, "connect_timeout") >= 3);
  CHECK(errors_of(run, "connect_timeout") + errors_of(run, "reply_timeout") == 5);
  CHECK(run.get<double>("wall_seconds") < 10);
}

TEST_CASE("connections to a port where nothing listens count as refused") {
  const ClosedPort closed;
  const BenchRun run = run_bench("steady", closed.port_text(), {"-c", "3", "-d", "1"});
  require_failed_run(run);
  CHECK(errors_of(run, "refused") == 3);
  CHECK(errors_of(run, "total") == 3);
  CHECK(run.get<std::uint64_t>("connections.established") == 0);
  CHECK(run.get<int>("errors.by_errno.ECONNREFUSED") == 3);
}

TEST_CASE("max-time ends a run whatever the server does") {
  TestServer server(TestServer::Mode::kSilent);
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "2", "-d", "60", "--timeout", "60", "--max-time", "1"});
  require_failed_run(run);
  CHECK(run.get<std::string>("status") == "max_time");
  CHECK(run.get<double>("wall_seconds") < 5);
}

TEST_CASE("a bad command line exits 2 and says why") {
  const BenchRun unknown = run_bench("nosuch", "7", {});
  CHECK(unknown.exit_status == 2);
  CHECK(unknown.table.find("unknown workload 'nosuch'") != std::string::npos);
  const BenchRun misplaced = run_bench("burst", "7", {"--rate", "10"});
  CHECK(misplaced.exit_status == 2);
  CHECK(misplaced.table.find("--rate does not apply to burst") != std::string::npos);
}
