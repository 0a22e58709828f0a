// What the runner and the worker threads share: a stop request, a barrier between phases, and
// the counters behind the progress line. Everything here is safe to use from any thread.
#pragma once

#include <atomic>
#include <barrier>
#include <cstdint>
#include <memory>

#include "engine/clock.hpp"
#include "engine/intervals.hpp"
#include "engine/server_cpu_sampler.hpp"

namespace echod::bench {

// One worker's published counters, on its own cache line so publishing never contends.
struct alignas(64) ProgressSlot {
  std::atomic<std::uint64_t> open_connections{0};
  std::atomic<std::uint64_t> messages_echoed{0};
  std::atomic<std::uint64_t> connections_completed{0};
  std::atomic<std::uint64_t> errors{0};
};

struct ProgressTotals {
  std::uint64_t open_connections = 0;
  std::uint64_t messages_echoed = 0;
  std::uint64_t connections_completed = 0;
  std::uint64_t errors = 0;
};

class RunControl {
 public:
  explicit RunControl(int threads);
  RunControl(const RunControl&) = delete;
  RunControl& operator=(const RunControl&) = delete;

  void request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  [[nodiscard]] bool stop_requested() const noexcept {
    return stop_.load(std::memory_order_relaxed);
  }

  // Waits until every worker thread has arrived, and returns the moment the last one did: the
  // same value in every thread, so they start the next phase on one clock.
  Nanos synchronize();
  // For a worker that failed: the others stop waiting for it.
  void leave() { barrier_.arrive_and_drop(); }
  // When the first synchronize() released the workers (the run phase began); 0 until then.
  [[nodiscard]] Nanos run_start() const noexcept {
    return run_start_.load(std::memory_order_acquire);
  }

  ProgressSlot& progress(int thread) { return slots_[static_cast<std::size_t>(thread)]; }
  [[nodiscard]] ProgressTotals progress_totals() const;

  // Per-second statistics: null unless --interval-json or the progress line wants them.
  IntervalMailbox* intervals(int thread) {
    return intervals_ ? &intervals_[static_cast<std::size_t>(thread)] : nullptr;
  }
  void enable_intervals() {
    intervals_ = std::make_unique<IntervalMailbox[]>(static_cast<std::size_t>(threads_));
  }
  [[nodiscard]] int threads() const noexcept { return threads_; }

  // Samples the server's CPU off the event loops; null without --server-pid.
  ServerCpuSampler* server_sampler() const noexcept { return server_sampler_; }
  void set_server_sampler(ServerCpuSampler* sampler) noexcept { server_sampler_ = sampler; }

 private:
  struct StampPhase {
    RunControl* control;
    void operator()() noexcept;
  };

  int threads_;
  std::atomic<bool> stop_{false};
  std::atomic<Nanos> phase_start_{0};
  std::atomic<Nanos> run_start_{0};
  std::barrier<StampPhase> barrier_;
  std::unique_ptr<ProgressSlot[]> slots_;
  std::unique_ptr<IntervalMailbox[]> intervals_;
  ServerCpuSampler* server_sampler_ = nullptr;
};

}  // namespace echod::bench
