// The ways results leave echo-bench. A run becomes one JSON report (nlohmann::json); the table
// for people is printed from that same report, so the two never disagree, and `echo-bench merge`
// combines reports into one that prints and serialises the same way.
#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "engine/intervals.hpp"
#include "report/histogram.hpp"
#include "report/summary.hpp"

namespace echod::bench {

// The latency sections every report carries, in table order.
struct HistogramSection {
  std::string_view label;     // table row
  std::string_view json_key;  // JSON object
};
inline constexpr std::array<HistogramSection, 4> kHistogramSections{{
    {"round trip", "latency_us"},
    {"round trip, uncorrected", "latency_uncorrected_us"},
    {"connect", "connect_us"},
    {"whole connection", "connection_total_us"},
}};

nlohmann::json build_report(const Summary& summary);
// A histogram as reports carry it: count, min, mean, the chosen percentiles and max in
// microseconds, and under "histogram" the non-empty buckets themselves in nanoseconds.
nlohmann::json histogram_json(const LatencyHistogram& histogram,
                              const std::vector<double>& percentiles);
// The inverse of histogram_json's "histogram" part; throws std::invalid_argument.
LatencyHistogram histogram_from_json(const nlohmann::json& section);
// One --interval-json line.
nlohmann::json interval_json(const IntervalStats& second);

// Pretty-printed; bytes that are not UTF-8 (a host name, a file name) become U+FFFD instead of
// passing into the JSON or aborting the write.
std::string dump_json(const nlohmann::json& json, int indent = 2);

void print_table(std::ostream& out, const nlohmann::json& report);

// Reports of one workload from several hosts or runs at once: counts and rates add up,
// histograms merge bucket by bucket and the percentiles are recomputed from the merged buckets.
// `names` label each input (file names). Throws std::invalid_argument for reports that cannot
// be merged.
nlohmann::json merge_reports(const std::vector<nlohmann::json>& reports,
                             const std::vector<std::string>& names,
                             const std::vector<double>& percentiles);

}  // namespace echod::bench
