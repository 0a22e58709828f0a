// The black-box conformance cases every model must pass. Each case starts its own
// `echod --model X --port 0` and talks to it over loopback; every blocking step has a timeout.
// Cases tagged [concurrent] need several clients served at once and are left out for models
// that do not declare that capability (see model_suite.hpp).
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "echod_test.hpp"

using namespace echod::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A short message comes back identical, and nothing else: after our EOF the server closes.
TEST_CASE("round trip") {
  EchodProcess server = start_echod();
  TestClient client = connect_client(server.port());
  const std::string message = "hello, echod\r\n";
  REQUIRE(client.send_all(message));
  const Received echoed = client.recv_exact(message.size());
  REQUIRE(echoed);
  REQUIRE(echoed.data == message);
  REQUIRE(client.shutdown_write());
  const Received rest = client.recv_until_eof();
  REQUIRE(rest);
  REQUIRE(rest.data.empty());
}

// 10,000 request/response exchanges of 1..1000 bytes on one connection, each echo read fully.
TEST_CASE("ping-pong") {
  constexpr std::uint64_t kSeed = 2;
  CAPTURE(kSeed);
  EchodProcess server = start_echod();
  TestClient client = connect_client(server.port());
  Rng rng(kSeed);
  for (int i = 0; i < 10000; ++i) {
    const std::string message = rng.bytes(rng.between(1, 1000));
    const Outcome sent = client.send_all(message);
    const Received echoed = client.recv_exact(message.size());
    if (!sent || !echoed || echoed.data != message) {
      INFO("message " << i << " of " << message.size() << " bytes");
      REQUIRE(sent);
      REQUIRE(echoed);
      REQUIRE(same_bytes(echoed.data, message));
    }
  }
}

// 16 MiB to a client whose 4 KiB receive buffer and slow first reads keep the server's socket
// full, so the server's sends are partial and it must queue and resume; every byte must come
// back in order, then EOF after our EOF.
TEST_CASE("lagging reader 16 MiB") {
  constexpr std::uint64_t kSeed = 3;
  CAPTURE(kSeed);
  constexpr std::size_t kTotal = 16 * MiB;
  constexpr std::size_t kSlowPart = 2 * MiB;  // read 4 KiB at a time, pausing after each
  const std::string payload = random_bytes(kTotal, kSeed);
  EchodProcess server = start_echod();
  ConnectOptions lagging;
  lagging.receive_buffer = 4 * KiB;
  TestClient client = connect_client(server.port(), lagging);
  const auto deadline = Clock::now() + 60s;

  Outcome sent;
  std::jthread writer([&] {
    sent = client.send_all(payload, left_until(deadline));
    if (sent) sent = client.shutdown_write();
  });
  Outcome read;
  std::size_t got = 0;
  while (got < kTotal) {
    const bool slow = got < kSlowPart;
    const std::size_t chunk = std::min(slow ? 4 * KiB : 64 * KiB, kTotal - got);
    const Received part = client.recv_exact(chunk, left_until(deadline));
    if (!part) {
      read = part;
      break;
    }
    if (Outcome same = same_bytes(part.data, std::string_view(payload).substr(got, chunk)); !same) {
      read = Outcome::failure("at offset " + std::to_string(got) + ": " + same.error);
      break;
    }
    got += chunk;
    if (slow) std::this_thread::sleep_for(2ms);
  }
  if (!read) ::shutdown(client.fd(), SHUT_RDWR);  // unblocks the writer
  writer.join();
  INFO(got << " of " << kTotal << " bytes echoed correctly");
  REQUIRE(read);
  REQUIRE(sent);
  const Received rest = client.recv_until_eof(10s);
  REQUIRE(rest);
  REQUIRE(rest.data.empty());
}

// 200 clients connected at once. Each first gets an echo while all the others are connected
// (a server serving one client at a time fails here), then all stream 64 KiB of random data
// in random-sized chunks simultaneously.
TEST_CASE("200 concurrent clients", "[concurrent]") {
  constexpr std::uint64_t kSeed = 4;
  CAPTURE(kSeed);
  constexpr int kClients = 200;
  constexpr std::size_t kBytes = 64 * KiB;
  EchodProcess server = start_echod();
  std::vector<TestClient> clients(kClients);
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i);
    REQUIRE(clients[static_cast<std::size_t>(i)].connect(server.port()));
  }
  for (int i = 0; i < kClients; ++i) {
    INFO("first echo of client " << i << " while " << kClients << " are connected");
    REQUIRE(clients[static_cast<std::size_t>(i)].echo("hello " + std::to_string(i)));
  }

  std::vector<Outcome> results(kClients);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] {
        TestClient& client = clients[static_cast<std::size_t>(i)];
        Outcome& result = results[static_cast<std::size_t>(i)];
        Rng rng(kSeed * 1000 + static_cast<std::uint64_t>(i));
        const std::string payload = rng.bytes(kBytes);
        for (std::size_t at = 0; at < kBytes && result;) {
          const std::size_t size = std::min(rng.between(1, 8 * KiB), kBytes - at);
          result = client.echo(std::string_view(payload).substr(at, size), 30s);
          at += size;
        }
        if (result) result = client.shutdown_write();
        if (result) {
          const Received rest = client.recv_until_eof(30s);
          result = rest ? (rest.data.empty() ? Outcome{} : Outcome::failure("extra bytes"))
                        : Outcome(rest);
        }
      });
    }
  }  // joins every thread
  int failed = 0;
  for (int i = 0; i < kClients; ++i) {
    const Outcome& result = results[static_cast<std::size_t>(i)];
    if (!result) {
      ++failed;
      INFO("client " << i);
      CHECK(result);
    }
  }
  REQUIRE(failed == 0);
}

// The client shuts down its sending side: the server echoes everything that is left, then
// closes. Also with nothing sent, and with a single byte.
TEST_CASE("half-close") {
  constexpr std::uint64_t kSeed = 5;
  CAPTURE(kSeed);
  EchodProcess server = start_echod();
  for (const std::size_t size : {std::size_t{200 * KiB}, std::size_t{0}, std::size_t{1}}) {
    INFO("payload of " << size << " bytes");
    const std::string payload = random_bytes(size, kSeed + size);
    TestClient client = connect_client(server.port());
    REQUIRE(client.send_all(payload));
    REQUIRE(client.shutdown_write());
    const Received echoed = client.recv_until_eof(10s);
    REQUIRE(echoed);
    REQUIRE(same_bytes(echoed.data, payload));
  }
}

// Clients that reset (RST) mid-stream, one while the server is still echoing to it and one
// while the server is blocked on its full socket, do not disturb the server: the next client
// is served correctly.
TEST_CASE("reset then next client") {
  constexpr std::uint64_t kSeed = 6;
  CAPTURE(kSeed);
  EchodProcess server = start_echod();
  {
    TestClient a = connect_client(server.port());
    REQUIRE(a.send_all(random_bytes(256 * KiB, kSeed)));
    REQUIRE(a.recv_exact(1024));  // the server is echoing to us right now
    a.reset();
  }
  {
    TestClient stuck = connect_client(server.port());
    const std::size_t pushed =
        push_until_blocked(stuck, random_bytes(64 * KiB, kSeed + 1), 300ms, 256 * MiB);
    INFO(pushed << " bytes pushed before the server stopped reading");
    REQUIRE(pushed > 0);
    stuck.reset();
  }
  TestClient next = connect_client(server.port());
  REQUIRE(next.echo(random_bytes(64 * KiB, kSeed + 2), 10s));
  Rng rng(kSeed + 3);
  REQUIRE(ping_pongs(next, rng, 100));
  REQUIRE(server.running());
}

// A client resetting mid-stream does not disturb another client being served at the same time.
TEST_CASE("reset beside active client", "[concurrent]") {
  constexpr std::uint64_t kSeed = 7;
  CAPTURE(kSeed);
  Rng rng(kSeed);
  EchodProcess server = start_echod();
  TestClient steady = connect_client(server.port());
  REQUIRE(ping_pongs(steady, rng, 10));
  TestClient resetting = connect_client(server.port());
  REQUIRE(resetting.send_all(random_bytes(256 * KiB, kSeed + 1)));
  REQUIRE(resetting.recv_exact(1024));
  REQUIRE(ping_pongs(steady, rng, 10));
  resetting.reset();
  REQUIRE(ping_pongs(steady, rng, 100));
  TestClient next = connect_client(server.port());
  REQUIRE(next.echo("after the reset"));
  REQUIRE(server.running());
}

// Client A sends without ever reading; client B meanwhile ping-pongs. The server must stop
// reading A once its queue reaches the high-water mark (backpressure), so A's sends block long
// before it pushed kCap bytes, B's echoes keep coming (each within a generous 2 s), and the
// server's memory stays bounded.
//
// The memory bound: the server may hold A's queue (high-water, 1 MiB by default, plus one
// 64 KiB scratch read, inside a vector whose capacity may double) and its usual per-connection
// state. The rest of what A pushed sits in kernel socket buffers (A's send buffer, the
// server's receive and send buffers, A's receive buffer), which are not in any process's RSS.
// A server that keeps reading A buffers all kCap bytes in its heap: 32 MiB of growth is far
// above the first and far below the second.
TEST_CASE("slow reader backpressure", "[concurrent]") {
  constexpr std::uint64_t kSeed = 8;
  CAPTURE(kSeed);
  constexpr std::size_t kCap = 128 * MiB;    // what A tries to push at most
  constexpr long kMaxGrowthKib = 32 * 1024;  // see above
  Rng rng(kSeed);
  EchodProcess server = start_echod();
  TestClient b = connect_client(server.port());
  REQUIRE(ping_pongs(b, rng, 20));
  // A pre-forking model may still be starting workers: measure once their number has settled.
  std::size_t processes = descendant_pids(server.pid()).size();
  for (int stable = 0, waited = 0; stable < 5 && waited < 200; ++waited) {
    std::this_thread::sleep_for(50ms);
    const std::size_t now = descendant_pids(server.pid()).size();
    stable = now == processes ? stable + 1 : 0;
    processes = now;
  }
  const long baseline_kib = memory_kib(server.pid());

  TestClient a = connect_client(server.port());
  const std::string chunk = random_bytes(256 * KiB, kSeed + 1);
  std::size_t pushed = 0;
  auto last_progress = Clock::now();
  int echoes = 0;
  // Push until A's sends have taken nothing for a whole second, pinging with B in between.
  while (pushed < kCap && Clock::now() - last_progress < 1s) {
    const std::ptrdiff_t n = a.try_send(chunk);
    REQUIRE(n >= 0);
    if (n > 0) {
      pushed += static_cast<std::size_t>(n);
      last_progress = Clock::now();
    }
    INFO("while A has pushed " << pushed << " bytes");
    REQUIRE(ping_pongs(b, rng, 1));
    ++echoes;
  }
  const long grown_kib = memory_kib(server.pid()) - baseline_kib;
  INFO("A pushed " << pushed << " bytes; B got " << echoes << " echoes meanwhile; server memory "
                   << baseline_kib << " KiB -> grew by " << grown_kib << " KiB");
  REQUIRE(pushed < kCap);  // the server stopped reading A
  REQUIRE(grown_kib < kMaxGrowthKib);
  // A stays stuck; B is still served.
  REQUIRE(ping_pongs(b, rng, 200));
  REQUIRE(server.running());
}

// SIGTERM twice while clients are connected (a drain, then the stop at once): idle ones, one
// the server is blocked writing to, and one streaming. echod exits with status 0 within 2 s of
// the second signal, every client sees its connection closed, and no process echod started
// survives it.
TEST_CASE("SIGTERM with clients") {
  constexpr std::uint64_t kSeed = 9;
  CAPTURE(kSeed);
  const bool concurrent = has_capability("concurrent");
  EchodProcess server = start_echod();

  std::vector<TestClient> clients;
  clients.reserve(5);            // references to elements are taken below
  for (int i = 0; i < 3; ++i) {  // idle; for a one-at-a-time model only the first is served
    clients.push_back(connect_client(server.port()));
    if (i == 0 || concurrent) REQUIRE(clients.back().echo("idle " + std::to_string(i)));
  }
  TestClient& stuck = clients.emplace_back(connect_client(server.port()));
  if (concurrent) {
    REQUIRE(push_until_blocked(stuck, random_bytes(64 * KiB, kSeed), 300ms, 256 * MiB) > 0);
  } else {
    REQUIRE(stuck.send_all("queued"));
  }

  TestClient& streaming = clients.emplace_back(connect_client(server.port()));
  std::atomic<int> streamed{0};
  std::atomic<bool> streaming_done{false};
  Outcome stream_end;
  // Stops by itself once the server closes; a failing REQUIRE stops it through the stop token.
  std::jthread streamer([&](const std::stop_token& stop) {
    Rng rng(kSeed + 1);
    while (stream_end && !stop.stop_requested()) {
      stream_end = streaming.echo(rng.bytes(rng.between(1, 4 * KiB)), 10s);
      if (stream_end) ++streamed;
    }
    streaming_done = true;
  });
  if (concurrent) {  // make sure it is mid-transfer when the signal comes
    const auto deadline = Clock::now() + 5s;
    while (streamed < 10 && !streaming_done && Clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
  }

  std::vector<ProcessIdentity> processes;  // what echod started (forking models)
  for (pid_t pid : descendant_pids(server.pid())) {
    if (auto identity = identify(pid)) processes.push_back(*identity);
  }
  INFO(processes.size() << " descendant processes of echod before SIGTERM; " << streamed
                        << " echoes streamed");
  if (concurrent) REQUIRE(streamed >= 10);

  // The first signal begins a drain (the clients above would be served on until they leave);
  // the second stops at once.
  server.signal(SIGTERM);
  REQUIRE(server.wait_for_log("draining", 2s));
  server.signal(SIGTERM);
  const std::optional<ExitStatus> status = server.wait_exit(2s);
  REQUIRE(status.has_value());
  REQUIRE(*status == 0);
  streamer.join();
  INFO("the streaming client ended with: " << stream_end);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    INFO("client " << i);
    REQUIRE(clients[i].is_closed_by_peer(2s));
  }
  for (const ProcessIdentity& process : processes) {
    INFO("process " << process.pid << " started by echod");
    REQUIRE_FALSE(is_running(process));
  }
}

// 500 sequential connect/echo/close cycles leave nothing behind: echod's descriptor count
// returns to where it was (the parent's, for models that fork), its memory does not grow with
// the number of closed connections, no zombie children remain, and it still serves.
TEST_CASE("connection churn") {
  constexpr std::uint64_t kSeed = 10;
  CAPTURE(kSeed);
  constexpr int kConnections = 500;
  constexpr long kMaxGrowthKib = 8 * 1024;  // 16 KiB leaked per connection would exceed it
  EchodProcess server = start_echod();
  const pid_t pid = server.pid();
  const std::string message = random_bytes(1024, kSeed);

  // Warm up once, then take the baseline once the descriptor count has settled.
  REQUIRE(connect_client(server.port()).echo(message));
  const int baseline_fds = settled_fd_count(pid);
  const long baseline_kib = rss_kib(pid);

  for (int i = 0; i < kConnections; ++i) {
    TestClient client;
    Outcome step = client.connect(server.port());
    if (step) step = client.echo(message);
    if (!step) {
      INFO("connection " << i);
      REQUIRE(step);
    }
  }
  // The server may close the last connections a moment after we did.
  int fds = open_fd_count(pid);
  for (const auto deadline = Clock::now() + 5s; fds > baseline_fds && Clock::now() < deadline;) {
    std::this_thread::sleep_for(10ms);
    fds = open_fd_count(pid);
  }
  const auto zombies = [&] {
    int count = 0;
    for (pid_t child : descendant_pids(pid))
      count += process_state(child) == 'Z' ? 1 : 0;
    return count;
  };
  int zombie_count = zombies();
  for (const auto deadline = Clock::now() + 5s; zombie_count > 0 && Clock::now() < deadline;) {
    std::this_thread::sleep_for(10ms);
    zombie_count = zombies();
  }
  const long grown_kib = rss_kib(pid) - baseline_kib;
  INFO("descriptors " << baseline_fds << " -> " << fds << "; memory " << baseline_kib
                      << " KiB -> grew by " << grown_kib << " KiB");
  REQUIRE(fds == baseline_fds);
  REQUIRE(grown_kib < kMaxGrowthKib);
  REQUIRE(zombie_count == 0);
  REQUIRE(connect_client(server.port()).echo(message));
}

// Descriptor exhaustion (EMFILE): echod may open only kLimit descriptors and three times as many
// clients connect at once. Every client is either served or closed by the server (load shed);
// none is left hanging. echod does not die and does not spin on its listener while the limit
// holds (its CPU time over that second stays small), and once the clients leave, new clients
// are served again. Models that fork serve every client from children with limits of their own.
TEST_CASE("descriptor exhaustion", "[concurrent]") {
  constexpr int kLimit = 64;
  constexpr int kClients = 3 * kLimit;
  EchodProcess server = start_echod_with_descriptor_limit(kLimit);
  std::vector<TestClient> clients(kClients);
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i);  // the kernel completes handshakes whether or not echod accepts
    REQUIRE(clients[static_cast<std::size_t>(i)].connect(server.port()));
  }
  int served = 0;
  int shed = 0;
  for (int i = 0; i < kClients; ++i) {
    TestClient& client = clients[static_cast<std::size_t>(i)];
    const std::string message = "client " + std::to_string(i);
    const Outcome sent = client.send_all(message);
    const Received echoed = sent ? client.recv_exact(message.size(), 5s) : Received{sent, {}};
    if (echoed && echoed.data == message) {
      ++served;
      continue;
    }
    INFO("client " << i << " was neither served nor closed: " << echoed);
    REQUIRE(client.is_closed_by_peer(Millis{1}));  // EOF or reset, not a timeout
    ++shed;
    client.close();
  }
  INFO(served << " clients served, " << shed << " closed by echod");
  REQUIRE(served > 0);

  // The served clients stay connected, so echod is still at its limit: it must idle.
  const double cpu_before = tree_cpu_seconds(server.pid());  // echod and whatever it forked
  std::this_thread::sleep_for(1s);
  const double cpu_used = tree_cpu_seconds(server.pid()) - cpu_before;
  INFO("echod used " << cpu_used << " s of CPU in 1 s while out of descriptors");
  REQUIRE(cpu_used < 0.5);
  REQUIRE(server.running());

  clients.clear();
  TestClient next;
  Outcome recovered;
  // echod may need a moment to see the closes and end its accept back-off.
  for (const auto deadline = Clock::now() + 5s; Clock::now() < deadline;) {
    recovered = next.connect(server.port());
    if (recovered) recovered = next.echo("served again", 1s);
    if (recovered) break;
    next.close();
    std::this_thread::sleep_for(100ms);
  }
  REQUIRE(recovered);
}
