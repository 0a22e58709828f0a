// Sizing of a pool of workers that grows and shrinks with load, as Apache's prefork and worker
// MPMs do it: `start` workers at start, then between `min-spare` and `max-spare` of them idle,
// never more than `max` in all. Used by prefork (processes) and prethread (threads); the pool
// counts its idle workers, asks SparePolicy what to do, and does it.
#pragma once

#include <chrono>
#include <string>

#include <boost/program_options.hpp>

namespace echod {

struct PoolSizing {
  int start = 1;
  int min_spare = 1;
  int max_spare = 1;
  int max = 1;
};

// Declares "<model>.start", "<model>.min-spare", "<model>.max-spare", "<model>.max" through
// bounded(), with `defaults`; `worker` names a member ("worker processes", "threads").
void declare_pool_options(boost::program_options::options_description& options,
                          const std::string& model, const std::string& worker,
                          const PoolSizing& defaults);

// Reads the four keys and cross-checks them (min-spare <= max-spare, min-spare <= max,
// start <= max). Throws std::invalid_argument naming the keys and their values.
[[nodiscard]] PoolSizing read_pool_options(const boost::program_options::variables_map& options,
                                           const std::string& model);

// Decides, each time the pool looks at itself, how many workers to start and whether to retire
// an idle one. Growth is fast: every missing spare at once, and while the pool stays short the
// number started per look doubles (up to kMaxSpawnRate) with looks kGrowInterval apart, so a
// crowd of clients arriving at once gets its workers within about a second (Apache doubles once
// per second). Shrinking is slow: one idle worker per kRetireInterval, so a short lull does
// not throw away workers the next burst needs. Owned by the pool's managing thread.
class SparePolicy {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kMaxSpawnRate = 32;
  static constexpr std::chrono::milliseconds kGrowInterval{50};
  static constexpr std::chrono::milliseconds kBurstGap{250};
  static constexpr std::chrono::milliseconds kRetireInterval{1000};
  // How often a pool with nothing to do looks anyway (idle workers pile up without a wakeup
  // when clients leave).
  static constexpr std::chrono::milliseconds kCheckInterval{1000};

  struct Plan {
    int spawn = 0;                                        // workers to start now (never past max)
    bool retire_one = false;                              // retire one idle worker now
    std::chrono::milliseconds next_look{kCheckInterval};  // look again after this at the latest
  };

  explicit SparePolicy(const PoolSizing& sizing) noexcept : sizing_(sizing) {}

  [[nodiscard]] const PoolSizing& sizing() const noexcept { return sizing_; }

  // `workers`: running (idle, busy or starting; not those already retiring); `idle`: those of
  // them without a client (a starting one counts as idle).
  [[nodiscard]] Plan plan(int workers, int idle, Clock::time_point now) noexcept;

 private:
  PoolSizing sizing_;
  int spawn_rate_ = 1;
  Clock::time_point last_spawn_{};
  Clock::time_point last_retire_{};
};

}  // namespace echod
