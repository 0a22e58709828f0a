#include "engine/run_control.hpp"

namespace echod::bench {

RunControl::RunControl(int threads)
    : threads_(threads),
      barrier_(threads, StampPhase{this}),
      slots_(std::make_unique<ProgressSlot[]>(static_cast<std::size_t>(threads))) {}

void RunControl::StampPhase::operator()() noexcept {
  const Nanos now = now_ns();
  control->phase_start_.store(now, std::memory_order_release);
  Nanos none = 0;
  control->run_start_.compare_exchange_strong(none, now, std::memory_order_acq_rel);
}

Nanos RunControl::synchronize() {
  barrier_.arrive_and_wait();
  return phase_start_.load(std::memory_order_acquire);
}

ProgressTotals RunControl::progress_totals() const {
  ProgressTotals totals;
  for (int i = 0; i < threads_; ++i) {
    const ProgressSlot& slot = slots_[static_cast<std::size_t>(i)];
    totals.open_connections += slot.open_connections.load(std::memory_order_relaxed);
    totals.messages_echoed += slot.messages_echoed.load(std::memory_order_relaxed);
    totals.connections_completed += slot.connections_completed.load(std::memory_order_relaxed);
    totals.errors += slot.errors.load(std::memory_order_relaxed);
  }
  return totals;
}

}  // namespace echod::bench
