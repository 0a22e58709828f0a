#include "echod_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "process_info.hpp"

extern char** environ;

namespace echod::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kLogLimit = 8u << 20;  // stderr kept per child; older half dropped past it

ExitStatus decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

bool names_option(const std::vector<std::string>& args, const std::string& long_name,
                  const std::string& short_name) {
  for (const auto& arg : args) {
    if (arg == long_name || arg == short_name || arg.rfind(long_name + "=", 0) == 0) return true;
  }
  return false;
}

// Processes whose process group is `pgid` (field 5 of /proc/PID/stat).
std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> members;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return members;
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    std::ifstream file(std::string("/proc/") + entry->d_name + "/stat");
    std::string text;
    if (!std::getline(file, text)) continue;
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 1));
    char state = 0;
    long ppid = 0;
    long pgrp = 0;
    if (fields >> state >> ppid >> pgrp && pgrp == pgid) members.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  return members;
}

// A spawned child with drained stdout/stderr. Owned by one thread; the drain thread only
// appends to the buffers under the mutex.
class ChildProcess {
 public:
  ChildProcess(const std::string& binary, const std::vector<std::string>& args) {
    int out[2];
    int err[2];
    int wake[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
        ::pipe2(wake, O_CLOEXEC) != 0) {
      throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    }
    out_fd_ = out[0];
    err_fd_ = err[0];
    wake_read_ = wake[0];
    wake_write_ = wake[1];

    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const auto& arg : args)
      argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);  // dup2 clears close-on-exec
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group, so that everything it forks can be killed together; default
    // signal dispositions and an empty mask, whatever the test process set up.
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t signals;
    sigemptyset(&signals);
    posix_spawnattr_setsigmask(&attr, &signals);
    sigfillset(&signals);
    posix_spawnattr_setsigdefault(&attr, &signals);
    const int rc = ::posix_spawn(&pid_, binary.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
      pid_ = -1;
      close_fds();
      throw std::runtime_error("cannot start " + binary + ": " + std::strerror(rc));
    }
    drain_ = std::thread([this] { drain(); });
  }

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  ~ChildProcess() {
    kill_everything();
    [[maybe_unused]] ssize_t n = ::write(wake_write_, "x", 1);
    drain_.join();
    close_fds();
  }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  std::optional<ExitStatus> wait_exit(Millis timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (status_) return status_;
      int raw = 0;
      const pid_t rc = ::waitpid(pid_, &raw, WNOHANG);
      if (rc == pid_) {
        status_ = decode(raw);
      } else if (rc < 0 && errno != EINTR) {
        status_ = 255;  // ECHILD: cannot happen unless someone else reaped it
      } else if (Clock::now() >= deadline) {
        return std::nullopt;
      } else {
        std::this_thread::sleep_for(Millis{2});
      }
    }
  }

  [[nodiscard]] bool running() const {
    if (status_) return false;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      return false;
    }
    return info.si_pid == 0;
  }

  void signal(int signo) {
    if (!status_) ::kill(pid_, signo);  // unreaped, so the pid is still ours
  }

  std::string err() const {
    std::lock_guard lock(mutex_);
    return err_;
  }
  std::string out() const {
    std::lock_guard lock(mutex_);
    return out_;
  }

  // Waits until `ready(stderr so far)` holds or both pipes reached EOF or the deadline passes.
  template <typename Predicate>
  bool wait_err(Predicate ready, Clock::time_point deadline) const {
    std::unique_lock lock(mutex_);
    return cv_.wait_until(lock, deadline, [&] { return ready(err_) || drained_; }) && ready(err_);
  }

  // Waits until both pipes reached EOF (every process holding them exited), or the deadline.
  void wait_drained(Clock::time_point deadline) const {
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, deadline, [&] { return drained_; });
  }

  // SIGKILL for echod and everything it started: its process group while the leader is
  // unreaped (the group is then certainly ours), the members still in that group afterwards,
  // and descendants that left the group. Reaps echod.
  void kill_everything() {
    if (pid_ < 0) return;
    if (!status_) {
      for (pid_t child : descendant_pids(pid_))
        ::kill(child, SIGKILL);
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      int raw = 0;
      while (::waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
      }
      status_ = decode(raw);
    }
    // Members left behind can keep the group id alive, so it cannot have been reused.
    for (pid_t member : group_members(pid_))
      ::kill(member, SIGKILL);
  }

 private:
  void drain() {
    pollfd fds[3] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    std::string* sinks[2] = {&out_, &err_};
    char buffer[65536];
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
      if (::poll(fds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[2].revents != 0) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        std::lock_guard lock(mutex_);
        if (n > 0) {
          sinks[i]->append(buffer, static_cast<std::size_t>(n));
          if (sinks[i]->size() > kLogLimit) sinks[i]->erase(0, sinks[i]->size() - kLogLimit / 2);
        } else {
          fds[i].fd = -1;  // EOF (or error): poll ignores negative descriptors
        }
        cv_.notify_all();
      }
    }
    std::lock_guard lock(mutex_);
    drained_ = true;
    cv_.notify_all();
  }

  void close_fds() {
    for (int fd : {out_fd_, err_fd_, wake_read_, wake_write_}) {
      if (fd >= 0) ::close(fd);
    }
    out_fd_ = err_fd_ = wake_read_ = wake_write_ = -1;
  }

  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int wake_read_ = -1;
  int wake_write_ = -1;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::string out_;
  std::string err_;
  bool drained_ = false;
  std::thread drain_;
};

std::string tail(const std::string& text, std::size_t limit) {
  if (text.size() <= limit) return text;
  return "[... " + std::to_string(text.size() - limit) + " bytes before ...]\n" +
         text.substr(text.size() - limit);
}

}  // namespace

struct EchodProcess::Child : ChildProcess {
  using ChildProcess::ChildProcess;
};

EchodProcess::EchodProcess(std::vector<std::string> args)
    : EchodProcess(std::move(args), Options{}) {}

EchodProcess::EchodProcess(std::vector<std::string> args, Options options)
    : uncaught_at_start_(std::uncaught_exceptions()) {
  if (!names_option(args, "--bind", "-b")) args.insert(args.end(), {"--bind", "127.0.0.1"});
  if (!names_option(args, "--port", "-p")) args.insert(args.end(), {"--port", "0"});
  std::string command = options.binary;
  for (const auto& arg : args)
    command += " " + arg;
  INFO("echod command: " << command);
  try {
    child_ = std::make_unique<Child>(options.binary, args);
  } catch (const std::exception& e) {
    FAIL(e.what());
  }

  static constexpr std::string_view kMarker = "listening on ";
  const auto complete_line = [](const std::string& log) {
    const auto at = log.find(kMarker);
    return at != std::string::npos && log.find('\n', at) != std::string::npos;
  };
  if (!child_->wait_err(complete_line, Clock::now() + options.ready_timeout)) {
    const bool exited = child_->wait_exit(Millis{0}).has_value();
    const std::string why = exited ? "echod exited with status " +
                                         std::to_string(*child_->wait_exit(Millis{0})) +
                                         " before listening"
                                   : "echod did not log 'listening on' within " +
                                         std::to_string(options.ready_timeout.count()) + " ms";
    child_->kill_everything();
    child_->wait_drained(Clock::now() + Millis{1000});
    const std::string log = child_->err();
    child_.reset();
    FAIL(why << "; its stderr:\n" << tail(log, 8192));  // the INFO above names the command
  }

  // "listening on 127.0.0.1:41234 model=epoll" or "listening on [::1]:41234 model=epoll"
  const std::string log = child_->err();
  const auto begin = log.find(kMarker) + kMarker.size();
  const std::string line = log.substr(begin, log.find('\n', begin) - begin);
  const auto model_at = line.find(" model=");
  const std::string address = line.substr(0, model_at);
  const auto colon = address.rfind(':');
  INFO("echod said: listening on " << line);
  REQUIRE(model_at != std::string::npos);
  REQUIRE(colon != std::string::npos);
  host_ = address.substr(0, colon);
  if (host_.size() >= 2 && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
  const long port = std::strtol(address.c_str() + colon + 1, nullptr, 10);
  REQUIRE(port > 0);
  REQUIRE(port < 65536);
  port_ = static_cast<std::uint16_t>(port);
  model_ = line.substr(model_at + 7);
}

EchodProcess::~EchodProcess() {
  if (child_ && std::uncaught_exceptions() > uncaught_at_start_) {
    std::cerr << "---- stderr of echod (pid " << child_->pid() << ", model " << model_ << ") ----\n"
              << tail(child_->err(), 8192) << "---- end of echod stderr ----\n";
  }
}

pid_t EchodProcess::pid() const noexcept {
  return child_->pid();
}

std::string EchodProcess::log() const {
  return child_->err();
}

bool EchodProcess::wait_for_log(std::string_view text, Millis timeout) const {
  return child_->wait_err(
      [&](const std::string& log) { return log.find(text) != std::string::npos; },
      Clock::now() + timeout);
}

void EchodProcess::signal(int signo) {
  child_->signal(signo);
}

std::optional<ExitStatus> EchodProcess::wait_exit(Millis timeout) {
  const std::optional<ExitStatus> status = child_->wait_exit(timeout);
  // What echod wrote just before exiting (its summary line) may still be in the pipes; a
  // descendant that outlived it may hold them open, hence the bound.
  if (status) child_->wait_drained(Clock::now() + Millis{1000});
  return status;
}

std::optional<ExitStatus> EchodProcess::stop(Millis timeout) {
  signal(SIGTERM);  // a drain: over at once when no client is connected
  if (auto status = wait_exit(Millis{300})) return status;
  signal(SIGTERM);  // clients are: the second signal stops at once
  return wait_exit(timeout);
}

bool EchodProcess::running() const {
  return child_->running();
}

long long StopSummary::operator[](const std::string& name) const {
  const auto found = counts.find(name);
  return found == counts.end() ? -1 : found->second;
}

StopSummary stop_summary(const std::string& log) {
  static constexpr std::string_view kMarker = "summary: ";
  StopSummary summary;
  const auto at = log.find(kMarker);
  if (at == std::string::npos) {
    summary.error = "echod logged no 'summary: ' line";
    return summary;
  }
  if (log.find(kMarker, at + 1) != std::string::npos) {
    summary.error = "echod logged more than one 'summary: ' line";
    return summary;
  }
  const auto begin = at + kMarker.size();
  std::istringstream fields(log.substr(begin, log.find('\n', begin) - begin));
  std::string field;
  while (fields >> field) {
    const auto equals = field.find('=');
    char* end = nullptr;
    const long long value =
        equals == std::string::npos ? 0 : std::strtoll(field.c_str() + equals + 1, &end, 10);
    if (equals == std::string::npos || equals == 0 || end == field.c_str() + equals + 1 ||
        *end != '\0') {
      summary.error = "summary field '" + field + "' is not name=number";
      return summary;
    }
    summary.counts[field.substr(0, equals)] = value;
  }
  return summary;
}

RunResult run_echod(const std::vector<std::string>& args, Millis timeout,
                    const std::string& binary) {
  RunResult result;
  const auto deadline = Clock::now() + timeout;
  try {
    ChildProcess child(binary, args);
    result.exit_status = child.wait_exit(timeout);
    // Output still in the pipes; bounded, since a forked descendant may hold them open.
    child.wait_drained(std::min(deadline, Clock::now() + Millis{1000}));
    result.out = child.out();
    result.err = child.err();
  } catch (const std::exception& e) {
    result.err = e.what();
    result.exit_status = 127;  // as a shell reports a command it cannot run
  }
  return result;
}

ModelDescription describe_model(const std::string& model,
                                const std::vector<std::string>& extra_args,
                                const std::string& binary) {
  std::vector<std::string> args{"--model", model, "--describe-model"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::string command = binary;
  for (const auto& arg : args)
    command += " " + arg;

  ModelDescription description;
  const RunResult run = run_echod(args, Millis{10000}, binary);
  if (!run.exit_status || *run.exit_status != 0) {
    description.error = "`" + command + "` " +
                        (run.exit_status ? "exited with status " + std::to_string(*run.exit_status)
                                         : std::string("did not finish within 10 s")) +
                        "; its stderr:\n" + run.err;
    return description;
  }
  std::istringstream lines(run.out);
  std::string line;
  bool saw_capabilities = false;
  while (std::getline(lines, line)) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    const std::string value = line.substr(colon + 2);
    if (key == "name") description.name = value;
    if (key == "summary") description.summary = value;
    if (key == "file") description.file = value;
    if (key == "capabilities") {
      saw_capabilities = true;
      std::istringstream names(value);
      std::string name;
      while (std::getline(names, name, ',')) {
        if (!name.empty() && name != "one-client-at-a-time") description.capabilities.insert(name);
      }
    }
  }
  if (!saw_capabilities || description.name != model) {
    description.error = "`" + command + "` printed no capabilities line for model '" + model +
                        "'; its stdout:\n" + run.out;
  }
  return description;
}

}  // namespace echod::test
