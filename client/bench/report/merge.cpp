#include <algorithm>
#include <stdexcept>

#include "report/report.hpp"

namespace echod::bench {
namespace {

using nlohmann::json;

// Worst first: a merged report is as bad as its worst part.
constexpr std::array<std::string_view, 6> kStatusOrder{"failed", "interrupted", "max_time",
                                                       "errors", "overloaded",  "ok"};

std::size_t severity(const std::string& status) {
  const auto it = std::find(kStatusOrder.begin(), kStatusOrder.end(), status);
  return static_cast<std::size_t>(it - kStatusOrder.begin());  // unknown: after "ok"
}

// Adds every number in `from` to the same key in `into` (objects recursively).
void add_numbers(json& into, const json& from) {
  for (const auto& [key, value] : from.items()) {
    if (value.is_object()) {
      add_numbers(into[key], value);
    } else if (value.is_number_unsigned()) {
      into[key] = into.value(key, std::uint64_t{0}) + value.get<std::uint64_t>();
    } else if (value.is_number()) {
      into[key] = into.value(key, 0.0) + value.get<double>();
    }
  }
}

void append_unique(json& into, const json& from) {
  for (const json& item : from) {
    if (std::find(into.begin(), into.end(), item) == into.end()) into.push_back(item);
  }
}

}  // namespace

json merge_reports(const std::vector<json>& reports, const std::vector<std::string>& names,
                   const std::vector<double>& percentiles) {
  if (reports.empty()) throw std::invalid_argument("nothing to merge");
  for (std::size_t i = 0; i < reports.size(); ++i) {
    if (!reports[i].is_object() || reports[i].value("tool", "") != "echo-bench") {
      throw std::invalid_argument(names[i] + " is not an echo-bench report");
    }
    if (reports[i].at("workload") != reports[0].at("workload")) {
      throw std::invalid_argument(names[i] + " is a " +
                                  reports[i].at("workload").get<std::string>() + " report; " +
                                  names[0] + " is " + reports[0].at("workload").get<std::string>());
    }
  }
  json merged = reports[0];
  merged["merged_from"] = names;
  merged["parameters"]["percentiles"] = percentiles;
  // The load all of them put on the server together.
  for (const char* key : {"threads", "connections", "workers", "rate"}) {
    if (!merged["parameters"][key].is_number()) continue;
    double total = 0;
    for (const json& report : reports)
      total += report.at("parameters").value(key, 0.0);
    if (merged["parameters"][key].is_number_integer()) {
      merged["parameters"][key] = static_cast<std::int64_t>(total);
    } else {
      merged["parameters"][key] = total;
    }
  }
  for (const char* object : {"connections", "messages", "bytes"})
    merged[object] = json::object();
  merged["errors"] = json::object();
  merged["cpu"]["client"] = json::object();
  // Server CPU belongs to one machine's process: a merged report does not add it up.
  merged["cpu"]["server"] = nullptr;
  merged["suspect_reasons"] = json::array();
  merged["warnings"] = json::array();
  merged["parts"] = json::array();
  std::string status = "ok";
  double measured = 0;
  double wall = 0;
  double busiest = 0;
  json first_mismatch = nullptr;
  std::vector<LatencyHistogram> histograms(kHistogramSections.size());

  for (std::size_t i = 0; i < reports.size(); ++i) {
    const json& report = reports[i];
    for (const char* object : {"connections", "messages", "bytes"})
      add_numbers(merged[object], report.at(object));
    json errors = report.at("errors");
    if (first_mismatch.is_null()) first_mismatch = errors.at("first_mismatch");
    errors.erase("first_mismatch");
    add_numbers(merged["errors"], errors);
    json client = report.at("cpu").at("client");
    busiest = std::max(busiest, client.at("busiest_thread_percent").get<double>());
    client.erase("busiest_thread_percent");
    add_numbers(merged["cpu"]["client"], client);
    if (severity(report.at("status")) < severity(status)) status = report.at("status");
    append_unique(merged["suspect_reasons"], report.at("suspect_reasons"));
    for (const json& warning : report.at("warnings"))
      merged["warnings"].push_back(names[i] + ": " + warning.get<std::string>());
    measured = std::max(measured, report.at("measured_seconds").get<double>());
    wall = std::max(wall, report.at("wall_seconds").get<double>());
    // burst: a part took as long as its slowest host.
    const json& parts = report.at("parts");
    for (std::size_t p = 0; p < parts.size(); ++p) {
      if (merged["parts"].size() <= p) merged["parts"].push_back(nullptr);
      json& slot = merged["parts"][p];
      if (parts[p].is_null() || (!slot.is_null() && slot.get<double>() >= parts[p])) continue;
      slot = parts[p];
    }
    for (std::size_t s = 0; s < kHistogramSections.size(); ++s) {
      try {
        histograms[s].merge(
            histogram_from_json(report.at(std::string(kHistogramSections[s].json_key))));
      } catch (const std::exception& e) {
        throw std::invalid_argument(names[i] + ": " + e.what());
      }
    }
  }
  merged["errors"]["first_mismatch"] = first_mismatch;
  merged["cpu"]["client"]["busiest_thread_percent"] = busiest;
  merged["cpu"]["seconds"] = measured;
  merged["measured_seconds"] = measured;
  merged["wall_seconds"] = wall;
  merged["status"] = status;
  merged["exit_status"] = exit_status_for(status);
  merged["suspect"] = !merged["suspect_reasons"].empty();
  for (std::size_t s = 0; s < kHistogramSections.size(); ++s)
    merged[std::string(kHistogramSections[s].json_key)] =
        histogram_json(histograms[s], percentiles);
  return merged;
}

}  // namespace echod::bench
