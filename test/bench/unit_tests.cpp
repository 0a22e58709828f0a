// echo-bench's parts in-process: a connection's send and receive timestamps, the server CPU
// sampler's thread and window, the CPU share's window, JSON that stays UTF-8, choosing among
// resolved addresses, unit suffixes and the command line (which reports, never exits).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "cli/options.hpp"
#include "cli/units.hpp"
#include "engine/server_cpu_sampler.hpp"
#include "net/addresses.hpp"
#include "net/connection.hpp"
#include "net/payload.hpp"
#include "net/ring_queue.hpp"
#include "report/report.hpp"
#include "report/summary.hpp"
#include "test_server.hpp"

namespace {

using namespace echod::bench;

SocketAddress loopback(std::uint16_t port) {
  SocketAddress address;
  auto* in = reinterpret_cast<sockaddr_in*>(&address.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.length = sizeof(sockaddr_in);
  return address;
}

// A listening socket on 127.0.0.1 and, after connect(), the accepted peer of a Connection.
struct Peer {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int fd = -1;
  std::uint16_t port = 0;

  Peer() {
    SocketAddress address = loopback(0);
    socklen_t length = address.length;
    REQUIRE(::bind(listener, address.get(), length) == 0);
    REQUIRE(::listen(listener, 4) == 0);
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address.storage), &length) == 0);
    port = ntohs(reinterpret_cast<sockaddr_in*>(&address.storage)->sin_port);
  }
  ~Peer() {
    if (fd >= 0) ::close(fd);
    ::close(listener);
  }
  void connect(Connection& connection) {
    REQUIRE(connection.start_connect(loopback(port), nullptr) == 0);
    fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    REQUIRE(fd >= 0);
    pollfd writable{connection.fd(), POLLOUT, 0};
    REQUIRE(::poll(&writable, 1, 5000) == 1);
    REQUIRE(connection.finish_connect() == 0);
  }
};

}  // namespace

TEST_CASE("a message's send time is when its first byte went out, not when it was queued") {
  Peer peer;
  Connection connection(7);
  peer.connect(connection);
  // 16 MiB cannot all go into the socket while the peer reads nothing.
  connection.queue_message(std::size_t{16} << 20, std::nullopt);
  REQUIRE(connection.flush() == 0);
  REQUIRE(connection.has_unsent());
  connection.queue_message(10, std::nullopt);
  REQUIRE(connection.flush() == 0);
  const auto& messages = connection.in_flight_messages();
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].sent != 0);
  CHECK(messages[1].sent == 0);  // held back behind the first: not the server's time yet
  const Nanos reading_began = now_ns();
  std::vector<char> sink(1 << 20);
  while (connection.has_unsent()) {
    while (::recv(peer.fd, sink.data(), sink.size(), 0) > 0) {
    }
    REQUIRE(connection.flush() == 0);
  }
  CHECK(messages[1].sent >= reading_began);
  CHECK(messages[1].intended < reading_began);
}

TEST_CASE("an echo is timed by the read that completed it") {
  Peer peer;
  Connection connection(3);
  peer.connect(connection);
  connection.queue_message(10, std::nullopt);
  REQUIRE(connection.flush() == 0);
  char bytes[10];
  pollfd readable{peer.fd, POLLIN, 0};
  REQUIRE(::poll(&readable, 1, 5000) == 1);
  REQUIRE(::recv(peer.fd, bytes, sizeof bytes, 0) == 10);
  REQUIRE(::send(peer.fd, bytes, sizeof bytes, 0) == 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const Nanos before_read = now_ns();
  std::vector<char> scratch(4096);
  const Connection::ReadResult result = connection.read_once(scratch);
  CHECK(result.verified_bytes == 10);
  CHECK(result.received_at >= before_read);
  Connection::Message message;
  CHECK(connection.pop_echoed(message));
}

TEST_CASE("the payload never repeats within a connection's stream, and differs between them") {
  std::string whole;
  append_payload(whole, 5, 0, 1 << 20);
  std::string pieces;
  for (std::size_t offset = 0; offset < whole.size(); offset += 1000)
    append_payload(pieces, 5, offset, std::min<std::size_t>(1000, whole.size() - offset));
  CHECK(pieces == whole);  // a function of the stream offset alone
  // No 64-byte window recurs 64 KiB (the old pattern's period) or 1 KiB later.
  for (std::size_t shift : {std::size_t{65536}, std::size_t{1024}, std::size_t{8}}) {
    CHECK(whole.compare(0, 64, whole, shift, 64) != 0);
    CHECK(whole.compare(300'000, 64, whole, 300'000 + shift, 64) != 0);
  }
  std::string other;
  append_payload(other, 6, 0, 1 << 20);
  CHECK(other.compare(0, 64, whole, 0, 64) != 0);
}

TEST_CASE("the server CPU sampler reads /proc on its own thread, over its own window") {
  std::thread::id sampled_on;
  double cpu_seconds = 0;
  ServerCpuSampler sampler([&] {
    sampled_on = std::this_thread::get_id();
    cpu_seconds += 0.5;
    return std::optional<CpuTime>(CpuTime{cpu_seconds, 0});
  });
  sampler.request_start();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  sampler.request_end();
  sampler.stop();
  CHECK(sampled_on != std::thread::id());
  CHECK(sampled_on != std::this_thread::get_id());
  const auto result = sampler.result();
  REQUIRE(result.has_value());
  CHECK(result->cpu.total_s() == Approx(0.5));
  CHECK(result->seconds > 0.03);
  CHECK(result->seconds < 5);
}

TEST_CASE("server CPU is divided by the window it was sampled over") {
  RunSetup setup;
  setup.options.server_pid = 1;
  RunResult run;
  run.stats.window.start = 0;
  run.stats.window.end = 10 * kNanosPerSecond;  // the client threads' merged window
  run.server = ServerCpu{CpuTime{1.5, 0.5}, 4.0};
  const Summary summary = summarize(setup, run, "now");
  REQUIRE(summary.server_cpu_percent.has_value());
  CHECK(*summary.server_cpu_percent == Approx(50.0));
}

TEST_CASE("bytes that are not UTF-8 do not leak into the JSON") {
  RunSetup setup;
  setup.options.host = "caf\xe9-\xff";
  setup.options.workload = Workload::kSteady;
  setup.options.connections = 1;
  setup.options.size = 1;
  RunResult run;
  const nlohmann::json report = build_report(summarize(setup, run, "now"));
  const std::string text = dump_json(report);
  const nlohmann::json parsed = nlohmann::json::parse(text);  // strict: throws on bad UTF-8
  CHECK(parsed.at("parameters").at("host") == "caf\xef\xbf\xbd-\xef\xbf\xbd");
}

TEST_CASE("of several resolved addresses the first that accepts is used") {
  const echod::bench::test::ClosedPort closed;
  const echod::bench::test::TestServer server(echod::bench::test::TestServer::Mode::kEcho);
  const std::vector<SocketAddress> candidates{loopback(closed.port()), loopback(server.port())};
  const SocketAddress* chosen = first_accepting(candidates, 1.0);
  REQUIRE(chosen != nullptr);
  CHECK(chosen->to_string() == "127.0.0.1:" + server.port_text());
  CHECK(first_accepting({loopback(closed.port())}, 1.0) == nullptr);
}

TEST_CASE("durations and quantities take units, and bad ones name their flag") {
  CHECK(parse_seconds("d", "500ms") == Approx(0.5));
  CHECK(parse_seconds("d", "10s") == Approx(10));
  CHECK(parse_seconds("d", "2m") == Approx(120));
  CHECK(parse_seconds("d", "1.5") == Approx(1.5));
  CHECK(parse_seconds("d", "250us") == Approx(250e-6));
  CHECK(parse_quantity("r", "10k") == Approx(10'000));
  CHECK(parse_quantity("r", "1.5M") == Approx(1'500'000));
  CHECK(parse_count("c", "10k", 1, 1'000'000) == 10'000);
  CHECK_THROWS_WITH(parse_seconds("duration", "-1s"), Catch::Contains("--duration=-1s"));
  CHECK_THROWS_WITH(parse_seconds("duration", "10 parsecs"), Catch::Contains("--duration"));
  CHECK_THROWS_WITH(parse_count("connections", "1.5", 1, 10), Catch::Contains("--connections"));
  CHECK_THROWS_WITH(parse_count("connections", "99999999999999999999", 1, 10),
                    Catch::Contains("--connections"));
  CHECK_THROWS(parse_quantity("rate", "inf"));
  CHECK_THROWS(parse_quantity("rate", "nan"));
}

TEST_CASE("the command line reports errors and help without exiting") {
  const auto parse = [](std::vector<std::string> words, std::string* out_text = nullptr) {
    std::vector<const char*> argv{"echo-bench"};
    for (const std::string& word : words)
      argv.push_back(word.c_str());
    std::ostringstream out;
    std::ostringstream err;
    CommandLine result = parse_command_line(static_cast<int>(argv.size()), argv.data(), out, err);
    if (out_text != nullptr) *out_text = out.str() + err.str();
    return result;
  };
  std::string text;
  CommandLine given = parse({"steady", "example.org:9000", "-d", "500ms", "-r", "1.5k"});
  REQUIRE(given.options.has_value());
  CHECK(given.options->host == "example.org");
  CHECK(given.options->port == 9000);
  CHECK(given.options->duration_s == Approx(0.5));
  CHECK(given.options->rate == Approx(1500));
  given = parse({"hold", "[::1]:7"});
  REQUIRE(given.options.has_value());
  CHECK(given.options->host == "::1");
  CHECK(given.options->connections == 1000);  // hold's default
  given = parse({"steady", "9000", "--percentiles", "50,99.99", "--find-rate", "p99.9=2ms"});
  REQUIRE(given.options.has_value());
  CHECK(given.options->percentiles == std::vector<double>{50, 99.99});
  REQUIRE(given.options->find_rate.has_value());
  CHECK(given.options->find_rate->percent == Approx(99.9));
  CHECK(given.options->find_rate->target_s == Approx(0.002));
  CHECK(percentile_key(99.99) == "p99_99");

  // Program_options 1.74 loops forever building the message for a word holding one of its own
  // placeholders (found by fuzzing): refused first, with a message.
  CHECK(parse({"steady", "--find%canonical_option%t"}, &text).exit_status == 2);
  CHECK(text.find("'%canonical_option%' is not accepted") != std::string::npos);
  CHECK(parse({"steady", "--rate=%value%'"}, &text).exit_status == 2);
  CHECK(parse({"steady", "9000", "--port", "9001"}, &text).exit_status == 2);
  CHECK(text.find("either as --port") != std::string::npos);
  CHECK(parse({"steady", "--connections", "-5"}, &text).exit_status == 2);
  CHECK(text.find("--connections") != std::string::npos);
  CHECK(parse({"churn", "--depth", "2"}, &text).exit_status == 2);
  CHECK(text.find("--depth does not apply to churn") != std::string::npos);
  CHECK(parse({"steady", "--find-rate", "p99"}, &text).exit_status == 2);

  given = parse({"steady", "--help"}, &text);
  CHECK(!given.options);
  CHECK(given.exit_status == 0);
  CHECK(text.find("--depth") != std::string::npos);
  CHECK(text.find("--workers") == std::string::npos);  // churn's, not steady's
  CHECK(text.find("(=100)") != std::string::npos);     // steady's connections default
  CHECK(text.find("Example:\n  echo-bench steady") != std::string::npos);
  given = parse({"churn", "--help"}, &text);
  CHECK(text.find("--workers") != std::string::npos);
  CHECK(text.find("--depth") == std::string::npos);
}

TEST_CASE("a histogram survives the JSON report and merges bucket by bucket") {
  LatencyHistogram a;
  LatencyHistogram b;
  LatencyHistogram both;
  for (Nanos value = 1; value < 2'000'000; value = value * 11 / 10 + 3) {
    (value % 3 ? a : b).record(value);
    both.record(value);
  }
  const std::vector<double> percentiles{50, 99, 99.9};
  LatencyHistogram merged = histogram_from_json(histogram_json(a, percentiles));
  merged.merge(histogram_from_json(histogram_json(b, percentiles)));
  CHECK(merged.count() == both.count());
  CHECK(merged.min() == both.min());
  CHECK(merged.max() == both.max());
  CHECK(merged.mean() == Approx(both.mean()));
  for (double percent : {1.0, 50.0, 90.0, 99.0, 99.9})
    CHECK(merged.percentile(percent) == both.percentile(percent));
  nlohmann::json tampered = histogram_json(a, percentiles);
  tampered["histogram"]["buckets"][0][1] = 123'456'789;
  CHECK_THROWS_AS(histogram_from_json(tampered), std::invalid_argument);
}

TEST_CASE("a send or two due at the end does not make a run overloaded; a shortfall does") {
  RunSetup setup;
  setup.options.workload = Workload::kSteady;
  setup.options.rate = 1000;
  setup.options.percentiles = {50, 99};
  RunResult run;
  run.stats.window.start = 0;
  run.stats.window.end = 2 * kNanosPerSecond;
  run.stats.counters.measured_messages = 1999;  // 999.5/s of 1000/s
  run.stats.counters.messages_due_not_sent = 1;
  CHECK(summarize(setup, run, "now").status == "ok");
  run.stats.counters.measured_messages = 1500;  // 750/s: the schedule piled up
  const Summary short_of_rate = summarize(setup, run, "now");
  CHECK(short_of_rate.status == "overloaded");
  CHECK(short_of_rate.exit_status == 4);
  run.stats.counters.measured_messages = 1999;
  run.stats.counters.messages_cut_short = 3;  // echoes still coming when the run ended
  CHECK(summarize(setup, run, "now").status == "overloaded");
}

TEST_CASE("the in-flight ring keeps order across wrap-around and growth") {
  RingQueue<int> queue;
  int next_in = 0;
  int next_out = 0;
  // Push 3, pop 2, repeatedly: the head walks round the ring and it grows while wrapped.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 3; ++i)
      queue.push_back(next_in++);
    for (int i = 0; i < 2; ++i) {
      REQUIRE(queue.front() == next_out);
      queue.pop_front();
      ++next_out;
    }
    REQUIRE(queue.size() == static_cast<std::size_t>(next_in - next_out));
    for (std::size_t i = 0; i < queue.size(); ++i)
      REQUIRE(queue[i] == next_out + static_cast<int>(i));
  }
  std::vector<int> seen;
  queue.for_each([&](int value) { seen.push_back(value); });
  REQUIRE(seen.size() == 50);
  CHECK(seen.front() == 100);  // 150 pushed, 100 popped
  CHECK(seen.back() == 149);
  queue.clear();
  CHECK(queue.empty());
  queue.push_back(7);
  CHECK(queue.front() == 7);
}
