// churn: --workers loops, each --iterations times: connect, --exchanges messages (send, wait for
// the whole echo, compare), half-close and read to the server's EOF (so nothing it sends past
// the echo goes unseen), close. Measures connect time, exchange round trips, time per
// connection and connections per second. Ends by count (or --duration, if given).
#pragma once

#include <vector>

#include "engine/worker.hpp"

namespace echod::bench {

class ChurnWorker final : public Worker {
 public:
  ChurnWorker(const RunSetup& setup, RunControl& control, int thread_index);

 private:
  struct Loop {
    int iterations_left = 0;
    int exchanges_done = 0;
    Nanos iteration_started = 0;
    bool active = false;
  };

  void run_workload() override;
  void on_connected(Connection& connection, Nanos now) override;
  void on_echoed(Connection& connection, const Connection::Message& message, Nanos now) override;
  void on_failed(Connection& connection, Nanos now) override;
  void on_closed(Connection& connection, Nanos now) override;
  void finish_iteration(Connection& connection, Nanos now);
  // Starts the loop's next connection, or retires the loop when it has made all of them.
  void start_iteration(Connection& connection, Nanos now);

  std::vector<Loop> loops_;  // one per connection slot
  std::size_t active_loops_ = 0;
  Nanos measure_from_ = 0;
  Nanos start_no_more_after_ = kNever;
};

}  // namespace echod::bench
