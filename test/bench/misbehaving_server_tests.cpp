// echo-bench against servers that misbehave in ways that used to mislead its figures: each test
// failed before the fix it names (docs/benchmarking.md, "What the figures guarantee").
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "bench_run.hpp"
#include "test_server.hpp"

namespace {

using echod::bench::test::BenchRun;
using echod::bench::test::run_bench;
using echod::bench::test::TestServer;
using Mode = TestServer::Mode;
using std::chrono::milliseconds;

std::uint64_t number(const BenchRun& run, const std::string& path) {
  return run.get<std::uint64_t>(path);
}

void require_mismatch(const BenchRun& run) {
  INFO("echo-bench table:\n" << run.table);
  REQUIRE(run.json_error.empty());
  CHECK(run.exit_status == 1);
  CHECK(run.get<std::string>("status") == "errors");
  CHECK(number(run, "errors.mismatch") >= 1);
}

}  // namespace

TEST_CASE("an open-loop run the server cannot keep up with is overloaded, not errors") {
  // 20 ms per echo on one connection: at most 50/s of the 200/s asked for.
  TestServer server(Mode::kSlow, {0, 0, milliseconds(20)});
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "1", "--rate", "200", "-d", "1", "--warmup", "0"});
  INFO("echo-bench table:\n" << run.table);
  REQUIRE(run.json_error.empty());
  CHECK(run.exit_status == 4);
  CHECK(run.get<std::string>("status") == "overloaded");
  CHECK(number(run, "errors.total") == 0);
  CHECK(number(run, "messages.lost") == 0);
  // Most of the schedule's 200 sends never went out, and they are counted, not dropped...
  CHECK(number(run, "messages.due_not_sent") >= 100);
  CHECK(number(run, "messages.sent") == number(run, "messages.echoed") +
                                            number(run, "messages.lost") +
                                            number(run, "messages.cut_short"));
  // ...and their latency is in the histogram, at least as long as they had waited at the end.
  CHECK(number(run, "latency_us.count") >=
        number(run, "messages.measured") + number(run, "messages.due_not_sent"));
  CHECK(run.get<double>("latency_us.max") >= 500'000);
  CHECK(run.get<bool>("suspect"));
  CHECK(run.table.find("overloaded") != std::string::npos);
}

TEST_CASE("a server that stalls once shows in the corrected latency, not only the uncorrected") {
  // At 200/s on one connection, a 500 ms stall holds back about 100 sends.
  TestServer server(Mode::kStallOnce, {6400, 0, milliseconds(500)});
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "1", "--rate", "200", "-d", "2", "--warmup", "0"});
  INFO("echo-bench table:\n" << run.table);
  REQUIRE(run.json_error.empty());
  CHECK(run.get<double>("latency_us.p99") >= 300'000);
  // Only the one message in flight during the stall waited for the server itself.
  CHECK(run.get<double>("latency_uncorrected_us.p99") < 250'000);
  CHECK(run.get<double>("latency_uncorrected_us.max") >= 400'000);
}

TEST_CASE("a dropped 64 KiB block is caught at the byte where it was dropped") {
  TestServer server(Mode::kDropBlock, {100'000, 65'536});
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "1", "--size", "300000", "-d", "1", "--warmup", "0"});
  require_mismatch(run);
  CHECK(number(run, "errors.first_mismatch.stream_offset") == 100'000);
}

TEST_CASE("a duplicated block is caught where the copy begins") {
  TestServer server(Mode::kDuplicate, {5000, 65'536});
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "1", "--size", "200000", "-d", "1", "--warmup", "0"});
  require_mismatch(run);
  CHECK(number(run, "errors.first_mismatch.stream_offset") == 5000 + 65'536);
}

TEST_CASE("two swapped blocks are caught where the first should be") {
  TestServer server(Mode::kReorder, {1000, 4096});
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "1", "--size", "20000", "-d", "1", "--warmup", "0"});
  require_mismatch(run);
  CHECK(number(run, "errors.first_mismatch.stream_offset") == 1000);
}

TEST_CASE("bytes sent to the wrong connection are caught") {
  TestServer server(Mode::kSwapClients);
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "2", "-d", "1", "--warmup", "0", "--timeout", "1"});
  require_mismatch(run);
}

TEST_CASE("a server that closes halfway through an echo loses the message") {
  TestServer server(Mode::kTruncate, {100});
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "1", "--size", "64", "-d", "1", "--warmup", "0"});
  INFO("echo-bench table:\n" << run.table);
  REQUIRE(run.json_error.empty());
  CHECK(run.exit_status == 1);
  CHECK(number(run, "errors.closed_by_peer") == 1);
  CHECK(number(run, "messages.lost") == 1);
  CHECK(number(run, "bytes.echoed") == 100);
}

TEST_CASE("churn reads to EOF and catches bytes a server sends after the last echo") {
  TestServer server(Mode::kExtraOnClose);
  const BenchRun run = run_bench("churn", server.port_text(), {"-w", "1", "-a", "3", "-e", "2"});
  require_mismatch(run);
  CHECK(number(run, "errors.mismatch") == 3);
  CHECK(run.is_null("errors.first_mismatch.expected"));  // nothing more had been sent
}

TEST_CASE("a saturated client makes a clean run suspect, in the JSON and the table") {
  TestServer server(Mode::kEcho);
  // --saturated-at 0: any busy share counts, so the reason is certain to be given.
  const BenchRun run = run_bench("steady", server.port_text(),
                                 {"-c", "2", "-d", "0.3", "--warmup", "0", "--saturated-at", "0"});
  INFO("echo-bench table:\n" << run.table);
  REQUIRE(run.json_error.empty());
  CHECK(run.exit_status == 0);
  CHECK(run.get<std::string>("status") == "ok");
  CHECK(run.get<bool>("suspect"));
  const auto reasons = run.json.at("suspect_reasons").get<std::vector<std::string>>();
  CHECK(reasons == std::vector<std::string>{"client_saturated"});
  CHECK(run.table.find("status        ok, suspect: client_saturated") != std::string::npos);
}
