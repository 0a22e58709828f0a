// The two ways results leave echo-bench: a table for people, JSON for scripts.
#pragma once

#include <array>
#include <ostream>
#include <string_view>
#include <vector>

#include "histogram.hpp"
#include "summary.hpp"

namespace echod::bench {

struct PercentileColumn {
  std::string_view label;     // table header
  std::string_view json_key;  // JSON field
  double percent;
};
inline constexpr std::array<PercentileColumn, 4> kPercentiles{{
    {"p50", "p50", 50.0},
    {"p90", "p90", 90.0},
    {"p99", "p99", 99.0},
    {"p99.9", "p99_9", 99.9},
}};

// A histogram as it is reported: its table label, JSON key, and whether this workload has it.
struct HistogramSection {
  std::string_view label;
  std::string_view json_key;
  const LatencyHistogram& histogram;
  bool applies;
};
std::vector<HistogramSection> histogram_sections(const Summary& summary);

void print_table(std::ostream& out, const Summary& summary);
void write_json(std::ostream& out, const Summary& summary);

}  // namespace echod::bench
