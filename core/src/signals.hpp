// Turns SIGINT/SIGTERM into the two steps of a stop (drain, then stop) and makes SIGPIPE
// harmless.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>

namespace echod {

struct StopPlan {
  std::chrono::milliseconds drain_timeout;  // 0: no drain, the first signal stops at once
  std::chrono::milliseconds stop_timeout;   // after the stop, the hard bound (then exit 1)
  std::atomic<int>* phase;                  // where the Phase is published (Endpoint)
  const std::atomic<std::uint32_t>* open;   // open connections (Endpoint), read at each step
};

struct StopDescriptors {
  int drain_fd;  // readable from the first signal on
  int stop_fd;   // readable from the drain's deadline or the second signal on
};

// Installs the handlers once per process. The descriptors become readable and stay readable
// (they are never drained), so every loop, thread and forked child polling them sees the step.
// First SIGINT/SIGTERM: the drain begins, the listeners given to shut_down_on_drain() are shut
// down at once (in the handler: a balancer sees the host go), and a timer runs for
// drain_timeout. Its end, or a second signal, is the stop; from then on the process must finish
// within stop_timeout or it exits with status 1 and a message: a wedged model cannot hang a
// shutdown.
StopDescriptors install_stop_signals(const StopPlan& plan);

// The open connections when the drain began and when its deadline passed, as the signal
// handlers read them (for the log lines that report each step).
struct StepCounts {
  std::uint32_t open_at_drain;
  std::uint32_t open_at_deadline;
};
[[nodiscard]] StepCounts step_counts() noexcept;

// The listening sockets the first signal shuts down (at most 16 are kept).
void shut_down_on_drain(std::span<const int> listen_fds);

}  // namespace echod
