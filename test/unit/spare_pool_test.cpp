// SparePolicy: how a growing pool decides to start and retire workers.
#include <chrono>

#include <catch2/catch.hpp>

#include "echod/spare_pool.hpp"

using echod::PoolSizing;
using echod::SparePolicy;
using namespace std::chrono_literals;

TEST_CASE("SparePolicy starts every missing spare at once, doubling while the pool stays short") {
  SparePolicy policy(PoolSizing{5, 5, 10, 256});
  auto now = SparePolicy::Clock::now();
  int workers = 5;
  int looks = 0;
  // 150 clients arrive at once: every worker started takes one before the next look.
  for (int busy = 5; busy < 150; ++looks) {
    const SparePolicy::Plan plan = policy.plan(workers, workers - busy, now);
    REQUIRE(plan.spawn >= 5);
    REQUIRE(plan.spawn <= SparePolicy::kMaxSpawnRate);
    CHECK(plan.next_look == SparePolicy::kGrowInterval);
    workers += plan.spawn;
    busy = std::min(150, workers);
    now += SparePolicy::kGrowInterval;
  }
  CHECK(looks <= 10);  // about half a second of looks
}

TEST_CASE("SparePolicy never starts past max") {
  SparePolicy policy(PoolSizing{2, 2, 4, 6});
  const auto now = SparePolicy::Clock::now();
  CHECK(policy.plan(5, 0, now).spawn == 1);
  CHECK(policy.plan(6, 0, now + 50ms).spawn == 0);
}

TEST_CASE("SparePolicy retires one idle worker per interval above max-spare, none at or below") {
  SparePolicy policy(PoolSizing{5, 5, 10, 256});
  const auto start = SparePolicy::Clock::now();
  CHECK_FALSE(policy.plan(10, 10, start).retire_one);
  CHECK(policy.plan(20, 20, start).retire_one);
  const SparePolicy::Plan soon = policy.plan(19, 19, start + 300ms);
  CHECK_FALSE(soon.retire_one);
  CHECK(soon.next_look <= 700ms);
  CHECK(policy.plan(19, 19, start + SparePolicy::kRetireInterval).retire_one);
}

TEST_CASE("SparePolicy replaces one missing spare with one worker once a burst is over") {
  SparePolicy policy(PoolSizing{5, 5, 10, 256});
  const auto start = SparePolicy::Clock::now();
  CHECK(policy.plan(0, 0, start).spawn == 5);
  CHECK(policy.plan(4, 4, start + 2s).spawn == 1);
}
