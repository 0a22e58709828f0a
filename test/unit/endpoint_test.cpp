// The Endpoint's caps and counters, the address ranges of per-ip-exempt, and the idle list.
#include <arpa/inet.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include "echod/endpoint.hpp"
#include "echod/idle_list.hpp"

using echod::AddressRange;
using echod::Admission;
using echod::Endpoint;
using echod::EndpointLimits;

namespace {

std::shared_ptr<spdlog::logger> quiet_log() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

sockaddr_storage peer(const char* ip) {
  sockaddr_storage address{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(address);
  v4.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, ip, &v4.sin_addr) == 1);
  return address;
}

Admission admit(Endpoint& endpoint, const char* ip) {
  // -1: socket options fail harmlessly; admission is about the address alone.
  return endpoint.admit(-1, peer(ip), sizeof(sockaddr_in));
}

in6_addr v6(const char* text) {
  in6_addr address{};
  REQUIRE(::inet_pton(AF_INET6, text, &address) == 1);
  return address;
}

}  // namespace

TEST_CASE("address ranges parse IPv4 and IPv6 prefixes and match mapped addresses", "[endpoint]") {
  AddressRange loopback;
  REQUIRE(AddressRange::parse("127.0.0.0/8", loopback));
  CHECK(loopback.contains(v6("::ffff:127.1.2.3")));
  CHECK_FALSE(loopback.contains(v6("::ffff:128.0.0.1")));
  AddressRange host;
  REQUIRE(AddressRange::parse("::1", host));
  CHECK(host.contains(v6("::1")));
  CHECK_FALSE(host.contains(v6("::2")));
  AddressRange nibble;
  REQUIRE(AddressRange::parse("2001:db8::/36", nibble));
  CHECK(nibble.contains(v6("2001:db8:0fff::1")));
  CHECK_FALSE(nibble.contains(v6("2001:db8:1000::1")));
  AddressRange bad;
  CHECK_FALSE(AddressRange::parse("127.0.0.1/33", bad));
  CHECK_FALSE(AddressRange::parse("localhost", bad));
  CHECK_FALSE(AddressRange::parse("10.0.0.0/", bad));
}

TEST_CASE("the global cap refuses past max-connections and frees on release", "[endpoint]") {
  EndpointLimits limits;
  limits.max_connections = 3;
  limits.max_per_ip = 0;
  Endpoint endpoint(limits, quiet_log());
  std::vector<Admission> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(admit(endpoint, "10.0.0.1"));
    REQUIRE(held.back().valid());
  }
  CHECK_FALSE(admit(endpoint, "10.0.0.2").valid());
  CHECK(endpoint.counts().refused_max_connections == 1);
  held.pop_back();  // one leaves: one more fits
  CHECK(admit(endpoint, "10.0.0.2").valid());
  const auto counts = endpoint.counts();
  CHECK(counts.accepted == 4);
  CHECK(counts.open == 2);
}

TEST_CASE("the per-address cap counts each address apart and skips exempt ones", "[endpoint]") {
  EndpointLimits limits;
  limits.max_connections = 100;
  limits.max_per_ip = 2;
  AddressRange exempt;
  REQUIRE(AddressRange::parse("127.0.0.0/8", exempt));
  limits.per_ip_exempt = {exempt};
  Endpoint endpoint(limits, quiet_log());
  std::vector<Admission> held;
  held.push_back(admit(endpoint, "10.0.0.1"));
  held.push_back(admit(endpoint, "10.0.0.1"));
  CHECK_FALSE(admit(endpoint, "10.0.0.1").valid());
  CHECK(admit(endpoint, "10.0.0.2").valid());  // another address is counted apart
  for (int i = 0; i < 5; ++i)
    held.push_back(admit(endpoint, "127.0.0.1"));  // exempt
  for (const auto& a : held)
    CHECK(a.valid());
  CHECK(endpoint.counts().refused_per_ip == 1);
  held.erase(held.begin());  // 10.0.0.1 has room again
  CHECK(admit(endpoint, "10.0.0.1").valid());
}

TEST_CASE("the per-address table stays usable however many addresses come and go", "[endpoint]") {
  EndpointLimits limits;
  limits.max_connections = 16;  // a table of 32 entries
  limits.max_per_ip = 1;
  Endpoint endpoint(limits, quiet_log());
  for (int round = 0; round < 2000; ++round) {
    const std::string ip =
        "10.1." + std::to_string(round / 250) + "." + std::to_string(round % 250);
    Admission first = admit(endpoint, ip.c_str());
    REQUIRE(first.valid());
    REQUIRE_FALSE(admit(endpoint, ip.c_str()).valid());
  }
  CHECK(endpoint.counts().open == 0);
  CHECK(endpoint.counts().refused_per_ip == 2000);
}

TEST_CASE("a dead child's places are given back by its parent", "[endpoint]") {
  EndpointLimits limits;
  limits.max_connections = 2;
  limits.max_per_ip = 0;
  Endpoint endpoint(limits, quiet_log());
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // takes both places and dies holding them
    Admission a = admit(endpoint, "10.0.0.1");
    Admission b = admit(endpoint, "10.0.0.1");
    const char ok = a.valid() && b.valid() ? 'y' : 'n';
    [[maybe_unused]] ssize_t n = ::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  char ok = 0;
  REQUIRE(::read(ready[0], &ok, 1) == 1);
  CHECK(ok == 'y');
  CHECK_FALSE(admit(endpoint, "10.0.0.2").valid());  // shared with the child: full
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  endpoint.release_owned_by(child);
  CHECK(admit(endpoint, "10.0.0.2").valid());
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_CASE("drained counts connections that end once the drain has begun", "[endpoint]") {
  EndpointLimits limits;
  limits.max_per_ip = 0;
  Endpoint endpoint(limits, quiet_log());
  Admission before = admit(endpoint, "10.0.0.1");
  Admission during = admit(endpoint, "10.0.0.1");
  before.release();
  endpoint.phase_cell()->store(static_cast<int>(echod::Phase::kDraining));
  CHECK(endpoint.draining());
  during.release();
  CHECK(endpoint.counts().drained == 1);
  CHECK_THAT(endpoint.summary(), Catch::Contains("accepted=2 ") && Catch::Contains("drained=1 "));
}

TEST_CASE("errors counts connections marked failed, during a drain too, and not as drained",
          "[endpoint]") {
  EndpointLimits limits;
  limits.max_per_ip = 0;
  Endpoint endpoint(limits, quiet_log());
  Admission clean = admit(endpoint, "10.0.0.1");
  Admission reset = admit(endpoint, "10.0.0.1");
  Admission reset_while_draining = admit(endpoint, "10.0.0.1");
  Admission moved_from = admit(endpoint, "10.0.0.1");
  clean.release();
  reset.mark_failed();
  reset.release();
  CHECK(endpoint.counts().errors == 1);
  moved_from.mark_failed();
  Admission moved_to = std::move(moved_from);  // the mark goes with the place
  endpoint.phase_cell()->store(static_cast<int>(echod::Phase::kDraining));
  reset_while_draining.mark_failed();
  reset_while_draining.release();
  moved_to.release();
  const auto counts = endpoint.counts();
  CHECK(counts.errors == 3);
  CHECK(counts.drained == 0);
  CHECK(counts.open == 0);
  CHECK_THAT(endpoint.summary(), Catch::Contains(" errors=3 "));
}

TEST_CASE("the idle list expires the least recently active first, and only those", "[endpoint]") {
  using Clock = echod::IdleList::Clock;
  struct Item : echod::IdleList::Hook {
    int id = 0;
    bool busy = false;  // still echoing: not idle
  };
  echod::IdleList idle(std::chrono::milliseconds(100));
  const auto t0 = Clock::now();
  std::vector<std::unique_ptr<Item>> items;
  for (int i = 0; i < 4; ++i) {
    items.push_back(std::make_unique<Item>());
    items.back()->id = i;
    idle.touch(*items.back(), t0 + std::chrono::milliseconds(10 * i));
  }
  idle.touch(*items[0], t0 + std::chrono::milliseconds(50));  // 0 was active again
  items[1]->busy = true;
  CHECK(idle.wait_ms(t0 + std::chrono::milliseconds(60)) == 50);  // item 1 at 10 + 100
  std::vector<int> expired;
  idle.expire(t0 + std::chrono::milliseconds(125), [&](echod::IdleList::Hook& hook) {
    auto& item = static_cast<Item&>(hook);
    if (item.busy) return false;
    expired.push_back(item.id);
    return true;
  });
  CHECK(expired == std::vector<int>{2});  // 1 is busy (re-touched), 3 and 0 are not idle yet
  items.erase(items.begin() + 3);         // a destroyed hook leaves the list by itself
  expired.clear();
  idle.expire(t0 + std::chrono::milliseconds(400), [&](echod::IdleList::Hook& hook) {
    expired.push_back(static_cast<Item&>(hook).id);
    return true;
  });
  CHECK(expired == std::vector<int>{0, 1});
  CHECK(idle.wait_ms(t0) == -1);
}
