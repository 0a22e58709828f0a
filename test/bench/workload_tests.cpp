// echo-bench against a correct server: every workload runs to completion with zero errors and
// counts that add up, and the JSON report carries the fields docs/benchmarking.md documents.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "bench_run.hpp"
#include "echod_process.hpp"
#include "test_server.hpp"

namespace {

using echod::bench::test::BenchRun;
using echod::bench::test::run_bench;
using echod::bench::test::TestServer;
using echod::test::EchodProcess;

// Zero errors, and every message and byte sent came back.
void require_clean(const BenchRun& run) {
  INFO("echo-bench table:\n" << run.table);
  REQUIRE(run.json_error.empty());
  CHECK(run.exit_status == 0);
  CHECK(run.get<std::string>("status") == "ok");
  CHECK(run.get<std::uint64_t>("errors.total") == 0);
  CHECK(run.get<std::uint64_t>("messages.unanswered") == 0);
  CHECK(run.get<std::uint64_t>("messages.sent") > 0);
  CHECK(run.get<std::uint64_t>("messages.sent") == run.get<std::uint64_t>("messages.echoed"));
  CHECK(run.get<std::uint64_t>("bytes.sent") == run.get<std::uint64_t>("bytes.echoed"));
  CHECK(run.get<std::uint64_t>("bytes.sent") ==
        run.get<std::uint64_t>("messages.sent") * run.get<std::uint64_t>("parameters.size"));
}

std::string port_of(const EchodProcess& echod) {
  return std::to_string(echod.port());
}

}  // namespace

TEST_CASE("churn against echod epoll: every connection completes its exchanges") {
  EchodProcess echod({"--model", "epoll"});
  const BenchRun run =
      run_bench("churn", port_of(echod),
                {"--workers", "4", "--iterations", "25", "--exchanges", "5", "--threads", "2"});
  require_clean(run);
  CHECK(run.get<std::uint64_t>("connections.completed") == 100);
  CHECK(run.get<std::uint64_t>("connections.established") == 100);
  CHECK(run.get<std::uint64_t>("messages.sent") == 500);
  CHECK(run.get<std::uint64_t>("latency_us.count") == 500);
  CHECK(run.get<std::uint64_t>("connection_total_us.count") == 100);
}

TEST_CASE("steady ping-pong against echod epoll") {
  EchodProcess echod({"--model", "epoll"});
  const BenchRun run = run_bench("steady", port_of(echod),
                                 {"--connections", "20", "--duration", "1", "--warmup", "0.3"});
  require_clean(run);
  CHECK(run.get<std::uint64_t>("connections.open_at_end") == 20);
  CHECK(run.get<std::uint64_t>("connect_us.count") == 20);
  // Warm-up messages are echoed but not measured.
  CHECK(run.get<std::uint64_t>("messages.measured") < run.get<std::uint64_t>("messages.echoed"));
  CHECK(run.get<std::uint64_t>("latency_us.count") == run.get<std::uint64_t>("messages.measured"));
}

TEST_CASE("steady pipelined on two threads against echod epoll") {
  EchodProcess echod({"--model", "epoll"});
  const BenchRun run = run_bench(
      "steady", port_of(echod),
      {"-c", "10", "--depth", "8", "--size", "1000", "-d", "1", "--warmup", "0", "--threads", "2"});
  require_clean(run);
  CHECK(run.get<int>("parameters.depth") == 8);
  CHECK(run.get<int>("parameters.threads") == 2);
}

TEST_CASE("steady at a fixed rate sends on schedule against echod epoll") {
  EchodProcess echod({"--model", "epoll"});
  const BenchRun run = run_bench("steady", port_of(echod),
                                 {"-c", "10", "--rate", "1000", "-d", "2", "--warmup", "0"});
  require_clean(run);
  // 1000/s for 2 s: the schedule decides the count (a loose bound; the machine may be busy).
  const auto measured = run.get<std::uint64_t>("messages.measured");
  CHECK(measured >= 1500);
  CHECK(measured <= 2010);
  CHECK(run.get<std::uint64_t>("latency_uncorrected_us.count") == measured);
}

TEST_CASE("hold against echod epoll keeps every connection and echoes every message") {
  EchodProcess echod({"--model", "epoll"});
  const BenchRun run = run_bench("hold", port_of(echod),
                                 {"-c", "300", "-d", "2", "--interval", "0.5", "--warmup", "0"});
  require_clean(run);
  CHECK(run.get<std::uint64_t>("connections.open_at_end") == 300);
  // Four sends per connection in 2 s, plus one more where the spread-out schedule allows it.
  CHECK(run.get<std::uint64_t>("messages.sent") >= 1200);
  CHECK(run.get<std::uint64_t>("messages.sent") <= 1500);
}

TEST_CASE("burst against echod epoll: every part goes out on every socket and back") {
  EchodProcess echod({"--model", "epoll"});
  const BenchRun run =
      run_bench("burst", port_of(echod), {"-c", "300", "--parts", "4", "--threads", "2"});
  require_clean(run);
  CHECK(run.get<std::uint64_t>("messages.sent") == 1200);
  CHECK(run.get<std::uint64_t>("latency_us.count") == 1200);
  CHECK(run.json.at("parts").size() == 4);
  for (const auto& part : run.json.at("parts"))
    CHECK(part.is_number());
}

TEST_CASE("every workload works against a server that is not echod") {
  TestServer server(TestServer::Mode::kEcho);
  require_clean(run_bench("churn", server.port_text(), {"-w", "2", "-a", "5", "-e", "3"}));
  require_clean(run_bench("steady", server.port_text(), {"-c", "4", "-d", "0.5", "--warmup", "0"}));
  require_clean(
      run_bench("hold", server.port_text(), {"-c", "20", "-d", "1", "-i", "0.5", "--warmup", "0"}));
  require_clean(run_bench("burst", server.port_text(), {"-c", "20", "--parts", "2"}));
}

TEST_CASE("source-ips spreads connections over the given local addresses") {
  TestServer server(TestServer::Mode::kEcho);
  const BenchRun run =
      run_bench("burst", server.port_text(),
                {"-c", "8", "--parts", "1", "--source-ips", "127.0.0.2-127.0.0.5"});
  require_clean(run);
  CHECK(run.get<int>("parameters.source_ip_count") == 4);
  const std::set<std::string> expected{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"};
  CHECK(server.peer_addresses() == expected);
}

TEST_CASE("the JSON report has the documented fields") {
  EchodProcess echod({"--model", "epoll"});
  const BenchRun run = run_bench(
      "steady", port_of(echod),
      {"-c", "4", "-d", "0.5", "--warmup", "0.2", "--server-pid", std::to_string(echod.pid())});
  require_clean(run);
  for (const char* field : {"tool",
                            "version",
                            "workload",
                            "status",
                            "exit_status",
                            "started_at",
                            "measured_seconds",
                            "wall_seconds",
                            "parameters.host",
                            "parameters.port",
                            "parameters.target",
                            "parameters.threads",
                            "parameters.source_ips",
                            "parameters.source_ip_count",
                            "parameters.size",
                            "parameters.connections",
                            "parameters.connect_concurrency",
                            "parameters.depth",
                            "parameters.rate",
                            "parameters.interval_s",
                            "parameters.workers",
                            "parameters.iterations",
                            "parameters.exchanges",
                            "parameters.parts",
                            "parameters.duration_s",
                            "parameters.warmup_s",
                            "parameters.connect_timeout_s",
                            "parameters.timeout_s",
                            "parameters.max_time_s",
                            "parameters.server_pid",
                            "connections.attempted",
                            "connections.established",
                            "connections.completed",
                            "connections.open_at_end",
                            "connections.measured",
                            "connections.per_second",
                            "messages.sent",
                            "messages.echoed",
                            "messages.unanswered",
                            "messages.lost",
                            "messages.cut_short",
                            "messages.due_not_sent",
                            "suspect",
                            "suspect_reasons",
                            "parameters.resolved",
                            "parameters.connect_rate",
                            "parameters.percentiles",
                            "cpu.server.seconds",
                            "messages.measured",
                            "messages.per_second",
                            "bytes.sent",
                            "bytes.echoed",
                            "bytes.measured",
                            "bytes.mb_per_second",
                            "parts",
                            "errors.total",
                            "errors.refused",
                            "errors.connect_timeout",
                            "errors.connect_failed",
                            "errors.reset",
                            "errors.closed_by_peer",
                            "errors.reply_timeout",
                            "errors.mismatch",
                            "errors.other",
                            "errors.by_errno",
                            "errors.first_mismatch",
                            "cpu.seconds",
                            "cpu.client.user_s",
                            "cpu.client.system_s",
                            "cpu.client.percent_of_one_core",
                            "cpu.client.busiest_thread_percent",
                            "cpu.server.pid",
                            "cpu.server.user_s",
                            "cpu.server.system_s",
                            "cpu.server.percent_of_one_core",
                            "warnings"}) {
    INFO("field " << field);
    CHECK(run.has(field));
  }
  for (const char* histogram :
       {"latency_us", "latency_uncorrected_us", "connect_us", "connection_total_us"}) {
    for (const char* field :
         {"count", "min", "mean", "p50", "p90", "p99", "p99_9", "max", "histogram.unit",
          "histogram.min", "histogram.max", "histogram.sum", "histogram.buckets"}) {
      INFO("field " << histogram << "." << field);
      CHECK(run.has(std::string(histogram) + "." + field));
    }
  }
  CHECK(run.get<std::string>("tool") == "echo-bench");
  CHECK(run.get<std::string>("workload") == "steady");
  CHECK(run.get<int>("parameters.connections") == 4);
  CHECK(run.get<double>("parameters.warmup_s") == Approx(0.2));
  CHECK(run.is_null("parameters.workers"));  // churn only
  CHECK(run.get<int>("cpu.server.pid") == echod.pid());
  const auto& latency = run.json.at("latency_us");
  CHECK(latency.at("min").get<double>() <= latency.at("p50").get<double>());
  CHECK(latency.at("p50").get<double>() <= latency.at("p99").get<double>());
  CHECK(latency.at("p99").get<double>() <= latency.at("max").get<double>());
  CHECK(run.get<bool>("suspect") == !run.json.at("suspect_reasons").empty());
}

TEST_CASE("hold with 10,000 connections against echod epoll", "[long]") {
  EchodProcess echod({"--model", "epoll"});
  const BenchRun run = run_bench("hold", port_of(echod),
                                 {"-c", "10000", "-d", "3", "--warmup", "0.5", "--interval", "1"});
  require_clean(run);
  CHECK(run.get<std::uint64_t>("connections.established") == 10000);
  CHECK(run.get<std::uint64_t>("connections.open_at_end") == 10000);
  CHECK(run.get<std::uint64_t>("messages.measured") >= 25000);
}
