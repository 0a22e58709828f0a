// What /proc says about a process: its descendants, memory, threads and descriptors.
// Every function returns a neutral value (empty, 0, -1) for a process that is gone, so callers
// can poll while a process exits. Linux only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace echod::test {

// Every process below `pid` (children, grandchildren, ...), zombies included, from the ppid
// field of /proc/*/stat. Processes a dying parent left to init are no longer its descendants.
[[nodiscard]] std::vector<pid_t> descendant_pids(pid_t pid);

// VmRSS of one process in KiB; 0 if it is gone or a zombie.
[[nodiscard]] long rss_kib(pid_t pid);

// VmRSS of `pid` plus all its descendants, in KiB: the memory of a server that forks.
[[nodiscard]] long memory_kib(pid_t pid);

// The Threads: line of /proc/PID/status, less a sanitizer runtime's own thread; -1 if the
// process is gone.
[[nodiscard]] int thread_count(pid_t pid);

// The niceness of every thread of `pid` (from getpriority per thread id), in /proc's order.
[[nodiscard]] std::vector<int> thread_niceness(pid_t pid);
// The niceness of process `pid` (its main thread).
[[nodiscard]] int process_niceness(pid_t pid);

// Entries in /proc/PID/fd (open descriptors); -1 if the process is gone.
[[nodiscard]] int open_fd_count(pid_t pid);
// open_fd_count once it stopped changing (three equal samples 50 ms apart), or the last sample
// after `timeout`.
[[nodiscard]] int settled_fd_count(pid_t pid,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

// User plus system CPU time the process has used, in seconds; -1 if it is gone.
[[nodiscard]] double cpu_seconds(pid_t pid);

// cpu_seconds of `pid` plus every descendant still there: the CPU of a server that forks or
// whose children come and go (those already reaped are not counted).
[[nodiscard]] double tree_cpu_seconds(pid_t pid);

// User plus system CPU time of `pid` and every descendant still there, in clock ticks
// (utime + stime of /proc/PID/stat, 1/sysconf(_SC_CLK_TCK) s each); 0 if all are gone.
[[nodiscard]] long long tree_cpu_ticks(pid_t pid);

// `root` or those of its descendants that hold the server side of the IPv4 TCP connection
// between local port `server_port` and peer port `client_port` (its socket inode, found in
// /proc/net/tcp, among their /proc/PID/fd links): which worker serves a given client.
[[nodiscard]] std::vector<pid_t> pids_holding_connection(pid_t root, unsigned server_port,
                                                         unsigned client_port);

// The state letter of /proc/PID/stat ('R', 'S', 'Z' for a zombie, ...); 0 if gone.
[[nodiscard]] char process_state(pid_t pid);

// A process named by pid and start time, so a later check is not fooled by pid reuse.
struct ProcessIdentity {
  pid_t pid = 0;
  unsigned long long start_ticks = 0;  // field 22 of /proc/PID/stat
};

// The identity of a running process; nullopt if it is gone.
[[nodiscard]] std::optional<ProcessIdentity> identify(pid_t pid);

// True while that very process exists and is not a zombie.
[[nodiscard]] bool is_running(const ProcessIdentity& process);

}  // namespace echod::test
