#include "signals.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

namespace echod {
namespace {

int g_stop_write_fd = -1;
unsigned g_stop_timeout_seconds = 0;
volatile sig_atomic_t g_stop_pid = 0;  // the process that armed the watchdog

void on_stop_signal(int) {
  int saved = errno;
  char byte = 1;
  // The pipe is nonblocking; once it holds a byte, later writes may fail with EAGAIN: fine.
  [[maybe_unused]] ssize_t n = ::write(g_stop_write_fd, &byte, 1);
  if (g_stop_pid == 0 && g_stop_timeout_seconds > 0) {
    g_stop_pid = ::getpid();
    ::alarm(g_stop_timeout_seconds);
  }
  errno = saved;
}

void on_stop_deadline(int) {
  static const char message[] = "echod: model did not stop within the stop timeout; exiting\n";
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, message, sizeof message - 1);
  ::_exit(1);
}

void set_handler(int signal, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (::sigaction(signal, &action, nullptr) != 0) {
    throw std::system_error(errno, std::generic_category(), "sigaction");
  }
}

}  // namespace

int install_stop_signals(unsigned stop_timeout_seconds) {
  static int read_fd = -1;
  if (read_fd >= 0) return read_fd;
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "pipe2");
  }
  read_fd = fds[0];
  g_stop_write_fd = fds[1];
  g_stop_timeout_seconds = stop_timeout_seconds;
  set_handler(SIGINT, on_stop_signal);
  set_handler(SIGTERM, on_stop_signal);
  set_handler(SIGALRM, on_stop_deadline);
  set_handler(SIGPIPE, SIG_IGN);
  return read_fd;
}

}  // namespace echod
