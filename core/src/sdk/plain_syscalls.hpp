#pragma once
// The hot path's system calls without glibc's cancellation wrappers.
//
// echod is multi-threaded (the drain reporter, the metrics exposer, a model's own threads), and
// glibc 2.36 wraps send, recv and epoll_wait as cancellation points: in a multi-threaded process
// each call switches the thread to asynchronous cancellation and back, two atomic
// read-modify-writes around every system call, ~1.4% of the epoll model's CPU per message in a
// profile. echod never cancels a thread (every thread is stopped through its stop descriptor),
// so these call the kernel directly; errno is set as with the glibc functions.

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

namespace echod::plain {

inline ssize_t send(int fd, const char* data, std::size_t size, int flags) noexcept {
  return ::syscall(SYS_sendto, fd, data, size, flags, nullptr, 0);
}

inline ssize_t recv(int fd, char* data, std::size_t size, int flags) noexcept {
  return ::syscall(SYS_recvfrom, fd, data, size, flags, nullptr, nullptr);
}

inline int epoll_wait(int epoll_fd, epoll_event* events, int max_events, int timeout_ms) noexcept {
  // epoll_pwait with no mask is epoll_wait (the only form some architectures have).
  return static_cast<int>(
      ::syscall(SYS_epoll_pwait, epoll_fd, events, max_events, timeout_ms, nullptr, 0));
}

}  // namespace echod::plain
