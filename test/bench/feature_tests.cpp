// echo-bench's command-line features end to end: merge, --find-rate, --interval-json,
// --connect-rate, --percentiles, the positional target and unit suffixes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench_run.hpp"
#include "report/report.hpp"
#include "test_server.hpp"

namespace {

using echod::bench::histogram_from_json;
using echod::bench::LatencyHistogram;
using echod::bench::test::BenchRun;
using echod::bench::test::run_bench;
using echod::bench::test::run_bench_raw;
using echod::bench::test::TestServer;
using Mode = TestServer::Mode;

// A file under /tmp removed when the test ends.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& name)
      : path("/tmp/echo-bench-test-" + std::to_string(::getpid()) + "-" + name) {}
  ~TempFile() { std::remove(path.c_str()); }
  [[nodiscard]] std::vector<std::string> lines() const {
    std::ifstream file(path);
    std::vector<std::string> result;
    for (std::string line; std::getline(file, line);)
      result.push_back(line);
    return result;
  }
};

}  // namespace

TEST_CASE("merge adds up two reports and takes percentiles from the merged buckets") {
  TestServer server(Mode::kEcho);
  const TempFile first("merge-a.json");
  const TempFile second("merge-b.json");
  for (const TempFile* file : {&first, &second}) {
    const BenchRun run = run_bench_raw({"steady", server.port_text(), "-c", "3", "-d", "300ms",
                                        "--warmup", "0", "--quiet", "--json", file->path});
    REQUIRE(run.exit_status == 0);
  }
  const BenchRun merged = run_bench_raw(
      {"merge", first.path, second.path, "--json", "-", "--percentiles", "50,99,99.99"});
  INFO("table:\n" << merged.table);
  REQUIRE(merged.json_error.empty());
  CHECK(merged.exit_status == 0);
  const nlohmann::json a = nlohmann::json::parse(std::ifstream(first.path));
  const nlohmann::json b = nlohmann::json::parse(std::ifstream(second.path));
  CHECK(merged.get<std::uint64_t>("messages.sent") ==
        a.at("messages").at("sent").get<std::uint64_t>() +
            b.at("messages").at("sent").get<std::uint64_t>());
  LatencyHistogram both = histogram_from_json(a.at("latency_us"));
  both.merge(histogram_from_json(b.at("latency_us")));
  CHECK(merged.get<std::uint64_t>("latency_us.count") == both.count());
  CHECK(merged.get<double>("latency_us.p99_99") ==
        Approx(static_cast<double>(both.percentile(99.99)) / 1e3));
  CHECK(merged.json.at("merged_from").size() == 2);
  CHECK(merged.get<std::string>("status") == "ok");
  CHECK(merged.table.find("merged from 2 reports") != std::string::npos);

  const TempFile churn("merge-churn.json");
  REQUIRE(run_bench_raw(
              {"churn", server.port_text(), "-w", "1", "-a", "2", "--quiet", "--json", churn.path})
              .exit_status == 0);
  const BenchRun mixed = run_bench_raw({"merge", first.path, churn.path});
  CHECK(mixed.exit_status == 2);
  CHECK(mixed.table.find("is a churn report") != std::string::npos);
}

TEST_CASE("find-rate reports the highest rate that keeps p99 under the target") {
  // 5 ms per echo on one connection: about 200/s at most, with p99 far above 50 ms past that.
  TestServer server(Mode::kSlow, {0, 0, std::chrono::milliseconds(5)});
  const BenchRun run =
      run_bench("steady", server.port_text(),
                {"-c", "1", "--rate", "25", "--find-rate", "p99=50ms", "-d", "1s", "--warmup", "0"},
                echod::test::Millis{110000});
  INFO("table:\n" << run.table);
  REQUIRE(run.json_error.empty());
  CHECK(run.exit_status == 0);
  const nlohmann::json& search = run.json.at("find_rate");
  REQUIRE(search.at("rate").is_number());
  const double found = search.at("rate").get<double>();
  CHECK(found >= 50);
  CHECK(found <= 250);
  CHECK(search.at("trials").size() >= 3);
  CHECK(run.get<double>("parameters.rate") == found);  // the report is that rate's run
  for (const nlohmann::json& trial : search.at("trials")) {
    if (trial.at("passed").get<bool>()) CHECK(trial.at("rate").get<double>() <= found);
  }
  CHECK(run.table.find("find-rate") != std::string::npos);
}

TEST_CASE("interval-json writes one line per second") {
  TestServer server(Mode::kEcho);
  const TempFile intervals("intervals.jsonl");
  const BenchRun run =
      run_bench("steady", server.port_text(),
                {"-c", "2", "-d", "2s", "--warmup", "0", "--interval-json", intervals.path});
  REQUIRE(run.exit_status == 0);
  const std::vector<std::string> lines = intervals.lines();
  REQUIRE(lines.size() >= 2);
  std::uint64_t messages = 0;
  std::int64_t previous = -1;
  for (const std::string& line : lines) {
    const nlohmann::json second = nlohmann::json::parse(line);
    CHECK(second.at("second").get<std::int64_t>() > previous);
    previous = second.at("second").get<std::int64_t>();
    CHECK(second.at("errors") == 0);
    CHECK(second.contains("p50_us"));
    CHECK(second.contains("p99_us"));
    messages += second.at("messages").get<std::uint64_t>();
  }
  CHECK(messages == run.get<std::uint64_t>("messages.echoed"));
}

TEST_CASE("connect-rate paces the connections") {
  TestServer server(Mode::kEcho);
  const BenchRun run =
      run_bench("steady", server.port_text(),
                {"-c", "10", "--connect-rate", "10", "-d", "200ms", "--warmup", "0"});
  REQUIRE(run.exit_status == 0);
  CHECK(run.get<double>("parameters.connect_rate") == 10);
  CHECK(run.get<std::uint64_t>("connections.established") == 10);
  // Ten connections at 10/s take at least 0.9 s to open (the first goes at once).
  CHECK(run.get<double>("wall_seconds") >= 0.9 + 0.2);
}

TEST_CASE("the target may be given as [HOST:]PORT, and durations with units") {
  TestServer server(Mode::kEcho);
  const BenchRun run = run_bench_raw({"steady", "127.0.0.1:" + server.port_text(), "-c", "1", "-d",
                                      "250ms", "--warmup", "50ms", "--quiet", "--json", "-"});
  REQUIRE(run.exit_status == 0);
  CHECK(run.get<std::string>("parameters.target") == "127.0.0.1:" + server.port_text());
  CHECK(run.get<double>("parameters.duration_s") == Approx(0.25));
  CHECK(run.get<double>("parameters.warmup_s") == Approx(0.05));
  const BenchRun localhost = run_bench_raw({"steady", "localhost:" + server.port_text(), "-c", "1",
                                            "-d", "100ms", "--quiet", "--json", "-"});
  REQUIRE(localhost.exit_status == 0);
  CHECK(localhost.get<std::string>("parameters.target") == "127.0.0.1:" + server.port_text());
  CHECK(!localhost.json.at("parameters").at("resolved").empty());
}

TEST_CASE("percentiles chooses the reported percentiles") {
  TestServer server(Mode::kEcho);
  const BenchRun run =
      run_bench("steady", server.port_text(),
                {"-c", "1", "-d", "200ms", "--warmup", "0", "--percentiles", "50,99.99"});
  REQUIRE(run.exit_status == 0);
  CHECK(run.has("latency_us.p99_99"));
  CHECK(!run.has("latency_us.p90"));
  CHECK(run.table.find("p99.99") != std::string::npos);
}
