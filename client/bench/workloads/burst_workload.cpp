#include "workloads/burst_workload.hpp"

#include "workloads/workloads.hpp"

namespace echod::bench {

BurstWorker::BurstWorker(const RunSetup& setup, RunControl& control, int thread_index)
    : Worker(setup, control, thread_index,
             share_of(static_cast<std::size_t>(setup.options.connections), setup.options.threads,
                      thread_index)) {}

void BurstWorker::run_workload() {
  connect_all();
  control_.synchronize();
  begin_cpu_window(now_ns());
  stats_.parts.resize(static_cast<std::size_t>(options_.parts));
  for (PartTiming& part : stats_.parts) {
    if (!stop_requested()) {
      part.start = now_ns();
      for (Connection& connection : connections_) {
        if (connection.state() == Connection::State::kOpen) send(connection, part.start);
      }
      // Every socket's echo comes back, or its reply timeout fails it: this ends by itself.
      if (poll_until([this] { return in_flight_total_ == 0; })) part.end = now_ns();
    }
    control_.synchronize();  // every thread takes part in every round, stopped or not
  }
  end_cpu_window(now_ns());
  drain();
  close_all();
}

}  // namespace echod::bench
