// The latency histogram's layout and percentiles, and --source-ips parsing.
#include <catch2/catch.hpp>

#include "net/addresses.hpp"
#include "report/histogram.hpp"

using echod::bench::LatencyHistogram;
using echod::bench::Nanos;

TEST_CASE("histogram percentiles are within 0.2% and never optimistic") {
  LatencyHistogram histogram;
  for (Nanos micros = 1; micros <= 10000; ++micros)
    histogram.record(micros * 1000);
  CHECK(histogram.count() == 10000);
  CHECK(histogram.min() == 1000);
  CHECK(histogram.max() == 10'000'000);
  for (const double percent : {50.0, 90.0, 99.0, 99.9}) {
    const auto exact = static_cast<double>(percent * 100 * 1000);
    const auto reported = static_cast<double>(histogram.percentile(percent));
    INFO("p" << percent);
    CHECK(reported >= exact);
    CHECK(reported <= exact * 1.002);
  }
  CHECK(histogram.percentile(100) == histogram.max());
}

TEST_CASE("histogram buckets cover nanoseconds to minutes in order") {
  CHECK(LatencyHistogram::bucket_index(0) == 0);
  CHECK(LatencyHistogram::bucket_index(511) == 511);
  std::size_t previous = 0;
  for (std::uint64_t value = 1; value < (std::uint64_t{1} << 40); value = value * 3 / 2 + 1) {
    const std::size_t index = LatencyHistogram::bucket_index(value);
    CHECK(index >= previous);
    CHECK(LatencyHistogram::bucket_highest(index) >= value);
    CHECK(LatencyHistogram::bucket_highest(index) <= value + value / 512);
    previous = index;
  }
}

TEST_CASE("merged histograms equal one that saw everything") {
  LatencyHistogram a;
  LatencyHistogram b;
  LatencyHistogram both;
  for (Nanos value = 1; value < 100000; value += 7) {
    (value % 2 ? a : b).record(value);
    both.record(value);
  }
  a.merge(b);
  CHECK(a.count() == both.count());
  CHECK(a.min() == both.min());
  CHECK(a.max() == both.max());
  CHECK(a.percentile(99) == both.percentile(99));
}

TEST_CASE("source-ips ranges expand in order and bad ones are rejected") {
  const auto addresses =
      echod::bench::parse_source_addresses("127.0.0.254-127.0.1.1, 127.0.0.9,::1");
  REQUIRE(addresses.size() == 6);
  CHECK(addresses[0].to_string() == "127.0.0.254:0");
  CHECK(addresses[3].to_string() == "127.0.1.1:0");
  CHECK(addresses[4].to_string() == "127.0.0.9:0");
  CHECK(addresses[5].to_string() == "[::1]:0");
  CHECK_THROWS_AS(echod::bench::parse_source_addresses("127.0.0.5-127.0.0.1"),
                  std::invalid_argument);
  CHECK_THROWS_AS(echod::bench::parse_source_addresses("localhost"), std::invalid_argument);
}
