#include "engine/rate_search.hpp"

#include <cmath>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "report/summary.hpp"

namespace echod::bench {
namespace {

constexpr double kFirstRate = 1000;  // msg/s, when --rate does not say where to start
constexpr int kMaxDoublings = 30;
constexpr int kMaxBisections = 8;
constexpr double kCloseEnough = 1.05;  // bisect until the bracket is this narrow

}  // namespace

RateSearchOutcome search_rate(const RunSetup& base, const RunMonitor& monitor, std::ostream& log) {
  const RateSearch& search = *base.options.find_rate;
  RateSearchOutcome outcome;
  const auto trial = [&](double rate) {
    auto setup = std::make_unique<RunSetup>(base);
    setup->options.rate = std::max(1.0, std::round(rate));
    setup->options.find_rate.reset();
    const std::string started_at = utc_timestamp_now();
    auto run = std::make_unique<RunResult>(run_benchmark(*setup, monitor));
    const Summary summary = summarize(*setup, *run, started_at);
    RateTrial result;
    result.rate = setup->options.rate;
    result.status = summary.status;
    result.suspect = !summary.suspect_reasons.empty();
    if (!run->stats.latency.empty()) {
      result.percentile_us =
          static_cast<double>(run->stats.latency.percentile(search.percent)) / 1e3;
    }
    const bool shortfall = std::find(summary.suspect_reasons.begin(), summary.suspect_reasons.end(),
                                     "rate_shortfall") != summary.suspect_reasons.end();
    result.passed = summary.status == "ok" && !shortfall && result.percentile_us &&
                    *result.percentile_us <= search.target_s * 1e6;
    fmt::print(
        log, "find-rate: {:.0f} msg/s: p{:g} {} ({}) -> {}\n", result.rate, search.percent,
        result.percentile_us ? fmt::format("{:.1f}us", *result.percentile_us) : std::string("none"),
        summary.status, result.passed ? "pass" : "fail");
    outcome.trials.push_back(result);
    if (result.passed || !outcome.best_rate) {
      if (result.passed) outcome.best_rate = result.rate;
      outcome.setup = std::move(setup);
      outcome.run = std::move(run);
      outcome.started_at = started_at;
    }
    return result.passed && run_interrupted() == false;
  };

  double rate = base.options.rate > 0 ? base.options.rate : kFirstRate;
  double low = 0;   // highest rate that passed
  double high = 0;  // lowest rate that failed
  if (trial(rate)) {
    low = rate;
    for (int i = 0; i < kMaxDoublings && !run_interrupted(); ++i) {
      rate *= 2;
      if (!trial(rate)) {
        high = rate;
        break;
      }
      low = rate;
    }
  } else {
    high = rate;
    while (rate > 1 && !run_interrupted()) {
      rate /= 2;
      if (trial(rate)) {
        low = rate;
        break;
      }
      high = rate;
    }
  }
  for (int i = 0; i < kMaxBisections && low > 0 && high > low * kCloseEnough && !run_interrupted();
       ++i) {
    const double middle = std::round((low + high) / 2);
    if (middle <= low || middle >= high) break;  // whole messages/s: nothing left between
    if (trial(middle)) {
      low = middle;
    } else {
      high = middle;
    }
  }
  return outcome;
}

}  // namespace echod::bench
