#include "engine/cpu_usage.hpp"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace echod::bench {
namespace {

double seconds(const timeval& time) {
  return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6;
}

// What /proc/PID/stat says about one process.
struct ProcessStat {
  int parent = 0;
  CpuTime own;     // its threads', in whole clock ticks
  CpuTime reaped;  // the children it waited for
};

std::optional<ProcessStat> read_stat(const std::filesystem::path& directory) {
  std::ifstream file(directory / "stat");
  std::string line;
  if (!file || !std::getline(file, line)) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the
  // last ')'. ppid is field 4; utime, stime, cutime and cstime are fields 14 to 17.
  const auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close_paren + 1));
  std::string state;
  ProcessStat stat;
  fields >> state >> stat.parent;
  std::string skipped;
  for (int i = 0; i < 9; ++i)
    fields >> skipped;
  unsigned long long ticks[4] = {};
  for (unsigned long long& tick : ticks)
    fields >> tick;
  if (!fields) return std::nullopt;
  const auto per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
  stat.own = {static_cast<double>(ticks[0]) / per_second,
              static_cast<double>(ticks[1]) / per_second};
  stat.reaped = {static_cast<double>(ticks[2]) / per_second,
                 static_cast<double>(ticks[3]) / per_second};
  return stat;
}

// The nanosecond run time of a process's live threads (/proc/PID/task/*/schedstat).
double live_threads_runtime_s(const std::filesystem::path& directory) {
  double total = 0;
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator(directory / "task", error)) {
    std::ifstream file(task.path() / "schedstat");
    unsigned long long nanos = 0;
    if (file >> nanos) total += static_cast<double>(nanos) / 1e9;
  }
  return total;
}

// A process's CPU time. /proc/PID/stat rounds each process down to whole ticks, which loses
// almost everything for a thousand prefork workers that each ran a few milliseconds; schedstat
// is exact but forgets threads that exited. The larger of the two is kept, split into user and
// system as the ticks were.
CpuTime process_cpu_time(const std::filesystem::path& directory, const ProcessStat& stat) {
  const double ticked = stat.own.total_s();
  const double total = std::max(ticked, live_threads_runtime_s(directory));
  const double user_share = ticked > 0 ? stat.own.user_s / ticked : 1;
  CpuTime cpu{total * user_share, total * (1 - user_share)};
  cpu += stat.reaped;
  return cpu;
}

}  // namespace

CpuTime thread_cpu_time() {
  // getrusage() leaves out the running thread's time since the scheduler last accounted it (up
  // to a tick), which made short windows report over 100% of a core. CLOCK_THREAD_CPUTIME_ID
  // includes it: the total comes from there, split into user and system as getrusage() splits.
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  const double total = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  const double user = seconds(usage.ru_utime);
  const double split = user + seconds(usage.ru_stime);
  const double user_share = split > 0 ? user / split : 1;
  return {total * user_share, total * (1 - user_share)};
}

std::optional<CpuTime> process_tree_cpu_time(int pid) {
  const std::filesystem::path root_directory = "/proc/" + std::to_string(pid);
  const auto root = read_stat(root_directory);
  if (!root) return std::nullopt;
  std::multimap<int, std::filesystem::path> children;  // parent pid -> /proc/CHILD
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    int process = 0;
    const char* end = name.data() + name.size();
    const auto [parsed_to, failure] = std::from_chars(name.data(), end, process);
    if (failure != std::errc{} || parsed_to != end || process == pid) continue;
    if (const auto stat = read_stat(entry.path())) children.emplace(stat->parent, entry.path());
  }
  CpuTime total = process_cpu_time(root_directory, *root);
  std::vector<int> pending{pid};
  while (!pending.empty()) {
    const auto [first, last] = children.equal_range(pending.back());
    pending.pop_back();
    for (auto it = first; it != last; ++it) {
      const auto stat = read_stat(it->second);
      if (!stat) continue;  // exited meanwhile: its time is in its parent's reaped share
      total += process_cpu_time(it->second, *stat);
      pending.push_back(std::stoi(it->second.filename().string()));
    }
  }
  return total;
}

}  // namespace echod::bench
