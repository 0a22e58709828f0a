// CPU time of this thread or of another local process, to tell whether the client or the server
// was the busy one.
#pragma once

#include <optional>

namespace echod::bench {

struct CpuTime {
  double user_s = 0;
  double system_s = 0;

  [[nodiscard]] double total_s() const { return user_s + system_s; }
  CpuTime& operator+=(const CpuTime& other) {
    user_s += other.user_s;
    system_s += other.system_s;
    return *this;
  }
  friend CpuTime operator-(CpuTime a, const CpuTime& b) {
    return {a.user_s - b.user_s, a.system_s - b.system_s};
  }
};

// The calling thread's CPU time so far.
CpuTime thread_cpu_time();
// The CPU time so far of a process and every process below it (all their threads, and children
// they already reaped), so a server that forks or preforks is counted whole. From /proc/*/stat;
// nullopt when `pid` cannot be read (gone, or not ours to see). Clock-tick resolution (usually
// 10 ms).
std::optional<CpuTime> process_tree_cpu_time(int pid);

}  // namespace echod::bench
