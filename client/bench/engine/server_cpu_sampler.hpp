// Samples a server's CPU time (its whole process tree, from /proc) on a thread of its own. Reading
// /proc for a server with many threads or processes takes milliseconds; done inside a worker's
// event loop it stalled every connection of that thread at the window's edges, and the stall
// landed in the latency percentiles. Workers only post a request, which never blocks on /proc.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/clock.hpp"
#include "engine/cpu_usage.hpp"

namespace echod::bench {

// The server's CPU time between two samples, and the time between them: the CPU share is this
// CPU over this window, whatever the client threads' windows were.
struct ServerCpu {
  CpuTime cpu;
  double seconds = 0;
};

// Owned by the runner; request_*() may be called from any thread, result() after stop().
class ServerCpuSampler {
 public:
  using Sample = std::function<std::optional<CpuTime>()>;

  explicit ServerCpuSampler(Sample sample);
  ~ServerCpuSampler();
  ServerCpuSampler(const ServerCpuSampler&) = delete;
  ServerCpuSampler& operator=(const ServerCpuSampler&) = delete;

  // The measured window begins / ends now: the sampler thread reads /proc as soon as it can and
  // stamps the reading with the time it took it.
  void request_start();
  void request_end();
  // Waits for outstanding samples and ends the thread.
  void stop();
  // nullopt when a sample failed, or the tree lost CPU time (processes left it unreaped).
  [[nodiscard]] std::optional<ServerCpu> result() const;

 private:
  struct Stamped {
    std::optional<CpuTime> cpu;
    Nanos at = 0;
  };
  void serve();

  Sample sample_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool start_wanted_ = false;  // guarded by mutex_, like everything below
  bool end_wanted_ = false;
  bool stopping_ = false;
  std::optional<Stamped> start_;
  std::optional<Stamped> end_;
  std::thread thread_;
};

}  // namespace echod::bench
