#include "echod/spare_pool.hpp"

#include <algorithm>
#include <stdexcept>

#include "echod/options.hpp"

namespace echod {

namespace po = boost::program_options;

void declare_pool_options(po::options_description& options, const std::string& model,
                          const std::string& worker, const PoolSizing& defaults) {
  constexpr int kLimit = 65536;
  // clang-format off
  options.add_options()
      ((model + ".start").c_str(), bounded(1, kLimit)->default_value(defaults.start),
       (worker + " started at start").c_str())
      ((model + ".min-spare").c_str(), bounded(1, kLimit)->default_value(defaults.min_spare),
       ("idle " + worker + " kept at least: fewer, and more are started at once").c_str())
      ((model + ".max-spare").c_str(), bounded(1, kLimit)->default_value(defaults.max_spare),
       ("idle " + worker + " kept at most: more, and one per second is retired").c_str())
      ((model + ".max").c_str(), bounded(1, kLimit)->default_value(defaults.max),
       (worker + " at most = clients served at once; more wait in the listen backlog").c_str());
  // clang-format on
}

PoolSizing read_pool_options(const po::variables_map& options, const std::string& model) {
  const auto get = [&](const char* key) { return options[model + "." + key].as<int>(); };
  const PoolSizing sizing{get("start"), get("min-spare"), get("max-spare"), get("max")};
  const auto require = [&](bool ok, const char* low, int low_value, const char* high,
                           int high_value) {
    if (!ok) {
      throw std::invalid_argument(model + "." + low + " (" + std::to_string(low_value) +
                                  ") must not exceed " + model + "." + high + " (" +
                                  std::to_string(high_value) + ")");
    }
  };
  require(sizing.min_spare <= sizing.max_spare, "min-spare", sizing.min_spare, "max-spare",
          sizing.max_spare);
  require(sizing.min_spare <= sizing.max, "min-spare", sizing.min_spare, "max", sizing.max);
  require(sizing.start <= sizing.max, "start", sizing.start, "max", sizing.max);
  return sizing;
}

SparePolicy::Plan SparePolicy::plan(int workers, int idle, Clock::time_point now) noexcept {
  Plan plan;
  // A burst is looks that find the pool short less than kBurstGap apart; its doubling ends
  // with it. (Workers just started count as idle until they take a client, so looks in between
  // that find enough spares do not end it.)
  if (now - last_spawn_ >= kBurstGap) spawn_rate_ = 1;
  if (idle < sizing_.min_spare && workers < sizing_.max) {
    plan.spawn = std::min(std::max(sizing_.min_spare - idle, spawn_rate_), sizing_.max - workers);
    spawn_rate_ = std::min(spawn_rate_ * 2, kMaxSpawnRate);
    last_spawn_ = now;
    plan.next_look = kGrowInterval;
    return plan;
  }
  if (idle > sizing_.max_spare) {
    const auto since = now - last_retire_;
    if (since >= kRetireInterval) {
      plan.retire_one = true;
      last_retire_ = now;
      plan.next_look = kRetireInterval;
    } else {
      plan.next_look = std::chrono::ceil<std::chrono::milliseconds>(kRetireInterval - since);
    }
  }
  return plan;
}

}  // namespace echod
