#include "workloads/workloads.hpp"

#include "workloads/burst_workload.hpp"
#include "workloads/churn_workload.hpp"
#include "workloads/stream_workload.hpp"

namespace echod::bench {

std::size_t share_of(std::size_t total, int threads, int thread_index) {
  const auto count = static_cast<std::size_t>(threads);
  const auto index = static_cast<std::size_t>(thread_index);
  return total / count + (index < total % count ? 1 : 0);
}

std::unique_ptr<Worker> make_worker(const RunSetup& setup, RunControl& control, int thread_index) {
  switch (setup.options.workload) {
    case Workload::kChurn:
      return std::make_unique<ChurnWorker>(setup, control, thread_index);
    case Workload::kSteady:
    case Workload::kHold:
      return std::make_unique<StreamWorker>(setup, control, thread_index);
    case Workload::kBurst:
      return std::make_unique<BurstWorker>(setup, control, thread_index);
  }
  return nullptr;
}

}  // namespace echod::bench
