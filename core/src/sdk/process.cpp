#include "echod/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <new>
#include <system_error>

namespace echod {
namespace {

using Clock = std::chrono::steady_clock;

sigset_t signal_set(std::initializer_list<int> signals) noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (int signo : signals)
    sigaddset(&set, signo);
  return set;
}

void set_disposition(int signo, void (*handler)(int)) noexcept {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  ::sigaction(signo, &action, nullptr);
}

}  // namespace

ChildProcesses::ChildProcesses(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {
  // SIG_DFL, not an inherited SIG_IGN: with SIG_IGN the kernel reaps children itself and
  // waitpid() would never report their exits (waitpid(2), NOTES).
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  if (::sigaction(SIGCHLD, &dfl, &original_sigchld_) != 0) {
    throw std::system_error(errno, std::generic_category(), "sigaction(SIGCHLD)");
  }
  const sigset_t sigchld = signal_set({SIGCHLD});
  if (int error = ::pthread_sigmask(SIG_BLOCK, &sigchld, &original_mask_); error != 0) {
    ::sigaction(SIGCHLD, &original_sigchld_, nullptr);
    throw std::system_error(error, std::generic_category(), "pthread_sigmask");
  }
  exit_fd_ = Fd(::signalfd(-1, &sigchld, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!exit_fd_) {
    const int error = errno;
    ::pthread_sigmask(SIG_SETMASK, &original_mask_, nullptr);
    ::sigaction(SIGCHLD, &original_sigchld_, nullptr);
    throw std::system_error(error, std::generic_category(), "signalfd");
  }
}

ChildProcesses::~ChildProcesses() {
  if (!children_.empty()) stop_all(std::chrono::milliseconds(0));
  exit_fd_.reset();
  ::pthread_sigmask(SIG_SETMASK, &original_mask_, nullptr);  // a pending SIGCHLD is discarded
  ::sigaction(SIGCHLD, &original_sigchld_, nullptr);
}

pid_t ChildProcesses::spawn(const std::function<int()>& body) {
  const pid_t parent = ::getpid();
  // SIGINT/SIGTERM stay blocked across fork(), so echod's stop handler cannot run in the child
  // before run_child() has replaced it; a signal sent meanwhile waits for the child's own action.
  const sigset_t stop_signals = signal_set({SIGINT, SIGTERM});
  sigset_t mask;
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &mask);
  const pid_t pid = ::fork();
  if (pid == 0) run_child(parent, body);
  const int error = errno;
  ::pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  if (pid < 0) {
    errno = error;
    return -1;
  }
  try {
    children_.emplace(pid, Clock::now());
  } catch (...) {  // untracked children are not allowed: take this one back
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    throw;
  }
  return pid;
}

void ChildProcesses::run_child(pid_t parent, const std::function<int()>& body) noexcept {
  // PDEATHSIG fires when the thread that forked us exits: the parent's only thread.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);  // the parent died before prctl: nobody would kill us
  set_disposition(SIGTERM, SIG_DFL);
  set_disposition(SIGINT, SIG_IGN);
  exit_fd_.reset();
  ::pthread_sigmask(SIG_SETMASK, &original_mask_, nullptr);
  int code = 1;
  try {
    code = body();
  } catch (const std::exception& e) {
    log_->error("child {}: {}", ::getpid(), e.what());
  } catch (...) {
    log_->error("child {}: unknown exception", ::getpid());
  }
  log_->flush();
  ::_exit(code);
}

void ChildProcesses::drain_exit_fd() noexcept {
  signalfd_siginfo info[16];
  while (::read(exit_fd_.get(), info, sizeof info) > 0) {
  }
}

std::span<const ChildProcesses::Exit> ChildProcesses::reap() {
  reaped_.clear();
  drain_exit_fd();  // first, so an exit after the waitpid loop below makes it readable again
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) break;  // 0: the rest still run; ECHILD: no children at all
    auto it = children_.find(pid);
    if (it == children_.end()) {
      log_->debug("reaped child {} that was not ours ({})", pid, describe_exit(status));
      continue;
    }
    reaped_.push_back(Exit{pid, status, Clock::now() - it->second});
    children_.erase(it);
  }
  return reaped_;
}

std::size_t ChildProcesses::stop_all(std::chrono::milliseconds grace) noexcept {
  const auto deadline = Clock::now() + grace;
  try {
    for (;;) {
      for (const Exit& exit : reap())
        log_->debug("child {} {}", exit.pid, describe_exit(exit.status));
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (children_.empty() || left <= 0) break;
      pollfd pfd{exit_fd_.get(), POLLIN, 0};
      ::poll(&pfd, 1, static_cast<int>(left));
    }
  } catch (const std::exception&) {  // logging failed: go on killing
  }
  const std::size_t killed = children_.size();
  if (killed > 0) {
    log_->warn("{} child process(es) still running {} ms after the stop: killing them", killed,
               grace.count());
    for (const auto& [pid, spawned] : children_)
      ::kill(pid, SIGKILL);
  }
  // SIGKILLed children are gone at once, short of uninterruptible sleep; echod's stop-timeout
  // watchdog bounds even that.
  while (!children_.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) {  // ECHILD: someone else reaped them; nothing is left to wait for
      children_.clear();
      break;
    }
    children_.erase(pid);
  }
  return killed;
}

ProcessAcceptLock::ProcessAcceptLock(Kind kind)
    : kind_(kind), file_(::memfd_create("echod-accept-lock", MFD_CLOEXEC)) {
  if (!file_) throw std::system_error(errno, std::generic_category(), "memfd_create(accept lock)");
}

void ProcessAcceptLock::open_in_child() {
  // Opening /proc/self/fd/N makes a new open file description of the same file.
  Fd own(::open(("/proc/self/fd/" + std::to_string(file_.get())).c_str(), O_RDWR | O_CLOEXEC));
  if (!own) throw std::system_error(errno, std::generic_category(), "open(accept lock)");
  file_ = std::move(own);  // no lock is held yet, so closing the inherited one releases nothing
}

void ProcessAcceptLock::set(bool locked) {
  int rc = 0;
  do {
    if (kind_ == Kind::kFcntl) {
      struct flock lock {};
      lock.l_type = locked ? F_WRLCK : F_UNLCK;
      lock.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
      rc = ::fcntl(file_.get(), F_SETLKW, &lock);
    } else {
      rc = ::flock(file_.get(), locked ? LOCK_EX : LOCK_UN);
    }
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    throw std::system_error(errno, std::generic_category(),
                            kind_ == Kind::kFcntl ? "fcntl(accept lock)" : "flock(accept lock)");
  }
}

Scoreboard::Scoreboard(std::size_t slots) : slots_(slots) {
  void* map = ::mmap(nullptr, slots + 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(), "mmap(scoreboard)");
  cells_ = new (map) std::atomic<std::uint8_t>[slots + 1]();  // all 0: idle, no burst
}

Scoreboard::~Scoreboard() {
  ::munmap(cells_, slots_ + 1);
}

Scoreboard::Load Scoreboard::mark(std::size_t slot, bool busy) noexcept {
  cells_[1 + slot].store(busy ? 1 : 0);
  if (!busy && cells_[0].load() == 0) return Load::kSteady;  // only a burst's end is of interest
  std::size_t count = 0;
  for (std::size_t i = 1; i <= slots_; ++i)
    count += cells_[i].load(std::memory_order_relaxed);
  // exchange(): of several processes seeing the same change, one reports it.
  if (busy && count == slots_ && cells_[0].exchange(1) == 0) return Load::kFull;
  if (!busy && 2 * count <= slots_ && cells_[0].exchange(0) == 1) return Load::kEased;
  return Load::kSteady;
}

void Scoreboard::clear(std::size_t slot) noexcept {
  cells_[1 + slot].store(0);
}

bool lower_own_priority(int niceness) noexcept {
  if (niceness <= 0) return true;
  const auto self = static_cast<id_t>(::gettid());
  errno = 0;
  const int current = ::getpriority(PRIO_PROCESS, self);
  if (current == -1 && errno != 0) return false;
  return ::setpriority(PRIO_PROCESS, self, std::min(19, current + niceness)) == 0;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return "killed by " +
           (name != nullptr ? "SIG" + std::string(name) : std::to_string(WTERMSIG(status))) +
           (WCOREDUMP(status) ? " (core dumped)" : "");
  }
  return "wait status " + std::to_string(status);
}

}  // namespace echod
