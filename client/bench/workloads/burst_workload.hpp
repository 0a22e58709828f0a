// burst: open --connections sockets, then for each of --parts message parts send it on every
// socket and wait until every socket has it back, all threads in step (a part starts only when
// the previous one is back everywhere). Measures connect time, per-socket round trip and the
// time each part takes across all sockets.
#pragma once

#include "engine/worker.hpp"

namespace echod::bench {

class BurstWorker final : public Worker {
 public:
  BurstWorker(const RunSetup& setup, RunControl& control, int thread_index);

 private:
  void run_workload() override;
};

}  // namespace echod::bench
