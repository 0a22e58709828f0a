// Child processes of the forking models (fork, prefork): fork with a child set-up that cannot
// outlive or stop the server by accident, learn about exits through one descriptor a poll loop
// waits on, and reap every child before run() returns; plus what processes share (an accept
// lock, a scoreboard of busy children).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include "echod/fd.hpp"

namespace echod {

// The children of one forking model, owned by the parent.
//
// Process-wide state, hence one instance per process, created and used by the process's only
// thread: while it lives, SIGCHLD is blocked and has its default disposition, and its exits are
// read from a signalfd (signalfd(2) misses a signal that another thread has unblocked). It reaps
// with waitpid(-1), i.e. every child of the process. The destructor SIGKILLs and reaps any child
// still running and restores the signal mask and SIGCHLD's disposition.
//
// Who owns what: the parent owns this object, the listening sockets (through core) and every
// descriptor it opened; a child owns its copies of everything it inherited and ends with _exit(),
// so no destructor, atexit handler or buffered stdio of the parent's objects runs in it twice.
class ChildProcesses {
 public:
  struct Exit {
    pid_t pid;
    int status;                                    // as filled in by waitpid()
    std::chrono::steady_clock::duration lifetime;  // from spawn() to the reap
  };

  // Throws std::system_error when blocking SIGCHLD or creating the signalfd fails.
  explicit ChildProcesses(std::shared_ptr<spdlog::logger> log);
  ChildProcesses(const ChildProcesses&) = delete;
  ChildProcesses& operator=(const ChildProcesses&) = delete;
  ~ChildProcesses();

  // Forks a child that runs `body` and exits with its result (1 if it throws). Before `body`,
  // the child:
  //  - asks for SIGKILL when the parent dies (PR_SET_PDEATHSIG), then checks the parent did not
  //    die already, so a SIGKILLed echod leaves no child behind;
  //  - takes SIGTERM back to its default action: `kill CHILD` ends that child (and its
  //    connection) alone, instead of running echod's handler, which would stop the whole server
  //    through the shared stop pipe (a model may block SIGTERM while a child serves a client, as
  //    prefork's workers do: then `kill CHILD` retires it once that client is done);
  //  - ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and the parent turns
  //    it into the stop that every child follows through stop_fd;
  //  - gets the signal mask the process had before this object and closes exit_fd().
  // Returns the child's pid; -1 with errno set (EAGAIN: process limit; ENOMEM) if fork failed.
  // Throws std::bad_alloc only (the child is then killed and reaped).
  pid_t spawn(const std::function<int()>& body);

  // Readable when a child may have exited: then call reap().
  [[nodiscard]] int exit_fd() const noexcept { return exit_fd_.get(); }
  // Children spawned and not yet reaped.
  [[nodiscard]] std::size_t count() const noexcept { return children_.size(); }

  // Reaps every child that has exited, without blocking. The span is valid until the next call.
  std::span<const Exit> reap();

  // For a stop: waits up to `grace` for every child to exit by itself (children watch stop_fd),
  // then SIGKILLs the rest and reaps them all. Returns how many had to be killed.
  std::size_t stop_all(std::chrono::milliseconds grace) noexcept;

 private:
  [[noreturn]] void run_child(pid_t parent, const std::function<int()>& body) noexcept;
  void drain_exit_fd() noexcept;

  std::shared_ptr<spdlog::logger> log_;
  Fd exit_fd_;                // signalfd for SIGCHLD
  sigset_t original_mask_{};  // the mask before the constructor, restored in children
  struct sigaction original_sigchld_ {};
  std::unordered_map<pid_t, std::chrono::steady_clock::time_point> children_;  // pid -> spawned
  std::vector<Exit> reaped_;
};

// Serialises accept() among processes (prefork's workers): the holder waits on the listener,
// the others wait for the lock, so a new connection wakes one process instead of all of them.
// fcntl: a POSIX record lock, owned by the process. flock: a BSD lock, owned by the open file
// description, which fork() shares, hence each child opens its own (open_in_child). The kernel
// drops either kind when its holder dies, so a SIGKILLed holder cannot wedge the others. The
// lock file is an anonymous memfd: nothing is left on disk. Created by the parent before it
// forks; from then on each process uses its own copy.
class ProcessAcceptLock {
 public:
  enum class Kind { kFcntl, kFlock };

  // Throws std::system_error when the lock file cannot be created.
  explicit ProcessAcceptLock(Kind kind);
  ProcessAcceptLock(const ProcessAcceptLock&) = delete;
  ProcessAcceptLock& operator=(const ProcessAcceptLock&) = delete;

  // In a child, once, before its first acquire(): opens its own description of the lock file.
  // Throws std::system_error.
  void open_in_child();
  // Blocks until this process holds the lock / lets it go. Both throw std::system_error.
  void acquire() { set(true); }
  void release() { set(false); }

 private:
  void set(bool locked);

  Kind kind_;
  Fd file_;
};

// One busy flag per child in memory shared with the children (an anonymous MAP_SHARED
// mapping), for a parent whose children take their work themselves (prefork's workers accept
// on their own). A child marks its own slot; the parent clears the slot of a child that died,
// so a SIGKILLed busy child is not counted busy for ever. Created by the parent before it
// forks; the mapping is shared by every process, the object is not (each uses its copy).
class Scoreboard {
 public:
  // What a mark() changed, so that a burst of load is logged twice, not once per connection.
  enum class Load {
    kSteady,  // nothing to report
    kFull,    // every slot just became busy (reported once until kEased)
    kEased,   // after kFull, at most half the slots are busy again
  };

  // Throws std::system_error when the mapping cannot be created.
  explicit Scoreboard(std::size_t slots);
  Scoreboard(const Scoreboard&) = delete;
  Scoreboard& operator=(const Scoreboard&) = delete;
  ~Scoreboard();

  // Marks `slot` busy or idle (a child, its own slot) and counts the busy slots.
  Load mark(std::size_t slot, bool busy) noexcept;
  // Marks the slot of a child that died idle (the parent).
  void clear(std::size_t slot) noexcept;
  [[nodiscard]] bool busy(std::size_t slot) const noexcept { return cells_[1 + slot].load() != 0; }
  [[nodiscard]] std::size_t size() const noexcept { return slots_; }

 private:
  static_assert(std::atomic<std::uint8_t>::is_always_lock_free, "shared between processes");

  std::size_t slots_;
  // In the shared mapping: [0] is 1 between kFull and kEased; [1 + i] is 1 while slot i is busy.
  std::atomic<std::uint8_t>* cells_;
};

// Makes the calling thread (on Linux a thread's niceness is its own, and a child's is its own)
// `niceness` steps nicer, at most 19, so that the thread or process that accepts for it is
// scheduled ahead of a thousand busy connection threads and children on the same core, instead of
// getting a thousandth of it and leaving clients in the listen backlog. 0 changes nothing.
// Returns false if the kernel refused (the connection is served all the same).
bool lower_own_priority(int niceness) noexcept;

// "exited with status 3", "killed by SIGKILL": a wait status in words, for logs.
[[nodiscard]] std::string describe_exit(int status);

}  // namespace echod
