#include "process_info.hpp"

#include <sys/resource.h>

#include <algorithm>

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

namespace echod::test {
namespace {

struct Stat {
  char state = 0;
  pid_t ppid = 0;
  unsigned long long cpu_ticks = 0;  // user + system time, in clock ticks
  unsigned long long start_ticks = 0;
};

// Parses /proc/PID/stat. The command name (field 2) may hold spaces and parentheses, so the
// fields are counted from the last ')'.
std::optional<Stat> read_stat(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!file || !std::getline(file, text)) return std::nullopt;
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 1));
  Stat stat;
  std::string skip;
  unsigned long long user_ticks = 0;
  unsigned long long system_ticks = 0;
  fields >> stat.state >> stat.ppid;  // fields 3 and 4
  for (int field = 5; field < 14; ++field)
    fields >> skip;
  fields >> user_ticks >> system_ticks;  // fields 14 and 15
  for (int field = 16; field < 22; ++field)
    fields >> skip;
  fields >> stat.start_ticks;  // field 22
  stat.cpu_ticks = user_ticks + system_ticks;
  if (!fields) return std::nullopt;
  return stat;
}

// Numeric entries of a /proc directory.
std::vector<pid_t> numeric_entries(const std::string& path) {
  std::vector<pid_t> out;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return out;
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long value = std::strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0') out.push_back(static_cast<pid_t>(value));
  }
  ::closedir(dir);
  return out;
}

// The value of a "Key:  123 ..." line of /proc/PID/status; -1 if absent.
long status_field(pid_t pid, const std::string& key) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(file, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() &&
        line[key.size()] == ':') {
      return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
    }
  }
  return -1;
}

}  // namespace

std::vector<pid_t> descendant_pids(pid_t pid) {
  std::multimap<pid_t, pid_t> children;  // ppid -> pid
  for (pid_t candidate : numeric_entries("/proc")) {
    if (auto stat = read_stat(candidate)) children.emplace(stat->ppid, candidate);
  }
  std::vector<pid_t> found;
  std::vector<pid_t> pending{pid};
  while (!pending.empty()) {
    const pid_t parent = pending.back();
    pending.pop_back();
    auto [first, last] = children.equal_range(parent);
    for (auto it = first; it != last; ++it) {
      found.push_back(it->second);
      pending.push_back(it->second);
    }
  }
  return found;
}

long rss_kib(pid_t pid) {
  const long kib = status_field(pid, "VmRSS");  // absent for zombies
  return kib < 0 ? 0 : kib;
}

long memory_kib(pid_t pid) {
  long total = rss_kib(pid);
  for (pid_t child : descendant_pids(pid))
    total += rss_kib(child);
  return total;
}

// Under ThreadSanitizer (which the whole build, echod included, is then compiled with) the
// runtime starts one thread of its own when a process creates its first thread. It is not the
// server's, so it is not counted: a process with more than one thread has exactly one of them.
#if defined(__SANITIZE_THREAD__)
constexpr int kSanitizerThreads = 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr int kSanitizerThreads = 1;
#else
constexpr int kSanitizerThreads = 0;
#endif
#else
constexpr int kSanitizerThreads = 0;
#endif

int thread_count(pid_t pid) {
  const int threads = static_cast<int>(status_field(pid, "Threads"));
  return threads > 1 ? threads - kSanitizerThreads : threads;
}

std::vector<int> thread_niceness(pid_t pid) {
  std::vector<int> result;
  for (long tid : numeric_entries("/proc/" + std::to_string(pid) + "/task")) {
    errno = 0;
    const int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
    if (nice != -1 || errno == 0) result.push_back(nice);  // else: the thread just ended
  }
  return result;
}

int process_niceness(pid_t pid) {
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(pid));
  return nice == -1 && errno != 0 ? -100 : nice;
}

int open_fd_count(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return -1;
  ::closedir(dir);
  return static_cast<int>(numeric_entries(path).size());
}

int settled_fd_count(pid_t pid, std::chrono::milliseconds timeout) {
  int previous = -2;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int stable = 0; stable < 3 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const int now = open_fd_count(pid);
    stable = now == previous ? stable + 1 : 0;
    previous = now;
  }
  return previous;
}

double cpu_seconds(pid_t pid) {
  auto stat = read_stat(pid);
  if (!stat) return -1;
  return static_cast<double>(stat->cpu_ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double tree_cpu_seconds(pid_t pid) {
  double total = std::max(0.0, cpu_seconds(pid));
  for (pid_t child : descendant_pids(pid))
    total += std::max(0.0, cpu_seconds(child));
  return total;
}

long long tree_cpu_ticks(pid_t pid) {
  long long total = 0;
  for (pid_t process : [&] {
         std::vector<pid_t> all = descendant_pids(pid);
         all.push_back(pid);
         return all;
       }()) {
    if (auto stat = read_stat(process)) total += static_cast<long long>(stat->cpu_ticks);
  }
  return total;
}

std::vector<pid_t> pids_holding_connection(pid_t root, unsigned server_port, unsigned client_port) {
  // Lines of /proc/net/tcp: "sl local_address rem_address st ... uid timeout inode", addresses
  // as HEXIP:HEXPORT.
  std::ifstream table("/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // header
  std::string inode;
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, skip;
    fields >> slot >> local >> remote;
    for (int field = 4; field <= 9; ++field)
      fields >> skip;  // st, tx:rx queues, tr:when, retrnsmt, uid, timeout
    std::string node;
    fields >> node;
    const auto port_of = [](const std::string& address) {
      const auto colon = address.rfind(':');
      return colon == std::string::npos ? 0ul : std::stoul(address.substr(colon + 1), nullptr, 16);
    };
    if (port_of(local) == server_port && port_of(remote) == client_port && node != "0") {
      inode = node;
      break;
    }
  }
  std::vector<pid_t> holders;
  if (inode.empty()) return holders;
  const std::string wanted = "socket:[" + inode + "]";
  std::vector<pid_t> candidates = descendant_pids(root);
  candidates.push_back(root);
  for (pid_t pid : candidates) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    for (pid_t fd : numeric_entries(dir)) {
      char target[128];
      const std::string link = dir + "/" + std::to_string(fd);
      const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n > 0 && std::string(target, static_cast<std::size_t>(n)) == wanted) {
        holders.push_back(pid);
        break;
      }
    }
  }
  return holders;
}

char process_state(pid_t pid) {
  auto stat = read_stat(pid);
  return stat ? stat->state : '\0';
}

std::optional<ProcessIdentity> identify(pid_t pid) {
  auto stat = read_stat(pid);
  if (!stat) return std::nullopt;
  return ProcessIdentity{pid, stat->start_ticks};
}

bool is_running(const ProcessIdentity& process) {
  auto stat = read_stat(process.pid);
  return stat && stat->start_ticks == process.start_ticks && stat->state != 'Z' &&
         stat->state != 'X';
}

}  // namespace echod::test
