#include "signals.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iterator>
#include <system_error>

#include "echod/endpoint.hpp"

namespace echod {
namespace {

// Everything the handlers touch: written before they are installed, or async-signal-safe.
int g_drain_write_fd = -1;
int g_stop_write_fd = -1;
StopPlan g_plan{};
// Room for every listener core opens: one per address, or reuseport.workers (at most 1024).
int g_listeners[1024];
volatile sig_atomic_t g_listener_count = 0;
std::atomic<std::uint32_t> g_open_at_drain{0};
std::atomic<std::uint32_t> g_open_at_deadline{0};

void poke(int fd) {
  char byte = 1;
  // Nonblocking; once the pipe holds a byte, later writes may fail with EAGAIN: fine.
  [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
}

void arm_timer(std::chrono::milliseconds after) {
  itimerval timer{};
  timer.it_value.tv_sec = static_cast<time_t>(after.count() / 1000);
  timer.it_value.tv_usec = static_cast<suseconds_t>((after.count() % 1000) * 1000);
  if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0) timer.it_value.tv_usec = 1;
  ::setitimer(ITIMER_REAL, &timer, nullptr);
}

void enter(Phase phase) {
  const std::uint32_t open = g_plan.open->load(std::memory_order_relaxed);
  (phase == Phase::kDraining ? g_open_at_drain : g_open_at_deadline).store(open);
  g_plan.phase->store(static_cast<int>(phase));
  if (phase == Phase::kDraining) {
    for (int i = 0; i < g_listener_count; ++i)
      ::shutdown(g_listeners[i], SHUT_RDWR);  // new connects are refused from now on
    poke(g_drain_write_fd);
    arm_timer(g_plan.drain_timeout);
    return;
  }
  poke(g_drain_write_fd);
  poke(g_stop_write_fd);
  arm_timer(g_plan.stop_timeout);
}

void on_stop_signal(int) {
  const int saved = errno;
  switch (static_cast<Phase>(g_plan.phase->load())) {
    case Phase::kServing:
      if (g_plan.drain_timeout.count() > 0) {
        enter(Phase::kDraining);
      } else {
        for (int i = 0; i < g_listener_count; ++i)
          ::shutdown(g_listeners[i], SHUT_RDWR);
        enter(Phase::kStoppingNow);
      }
      break;
    case Phase::kDraining:
      enter(Phase::kStoppingNow);  // a second signal: stop at once
      break;
    default:
      break;  // stopping already; the watchdog is running
  }
  errno = saved;
}

void on_timer(int) {
  if (static_cast<Phase>(g_plan.phase->load()) == Phase::kDraining) {
    const int saved = errno;
    enter(Phase::kFinishing);  // the drain's deadline
    errno = saved;
    return;
  }
  static const char message[] = "echod: model did not stop within the stop timeout; exiting\n";
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, message, sizeof message - 1);
  ::_exit(1);
}

void set_handler(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);  // the handlers never interrupt each other
  sigaddset(&action.sa_mask, SIGTERM);
  sigaddset(&action.sa_mask, SIGALRM);
  action.sa_flags = SA_RESTART;
  if (::sigaction(signal, &action, nullptr) != 0) {
    throw std::system_error(errno, std::generic_category(), "sigaction");
  }
}

int make_pipe(int& write_end) {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe2");
  }
  write_end = fds[1];
  return fds[0];
}

}  // namespace

StopDescriptors install_stop_signals(const StopPlan& plan) {
  static StopDescriptors installed{-1, -1};
  if (installed.stop_fd >= 0) return installed;
  g_plan = plan;
  installed.drain_fd = make_pipe(g_drain_write_fd);
  installed.stop_fd = make_pipe(g_stop_write_fd);
  set_handler(SIGINT, on_stop_signal);
  set_handler(SIGTERM, on_stop_signal);
  set_handler(SIGALRM, on_timer);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, nullptr);
  return installed;
}

StepCounts step_counts() noexcept {
  return {g_open_at_drain.load(), g_open_at_deadline.load()};
}

void shut_down_on_drain(std::span<const int> listen_fds) {
  sigset_t stops, previous;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stops, &previous);
  int count = 0;
  for (int fd : listen_fds) {
    if (count == static_cast<int>(std::size(g_listeners))) break;
    g_listeners[count++] = fd;
  }
  g_listener_count = count;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

}  // namespace echod
