// core's ConnectionBuffer, compiled unchanged with its two socket calls redirected to the
// scripted fake: it calls them as plain::recv and plain::send (core/src/sdk/plain_syscalls.hpp),
// and `plain` names fake_plain below while the file is compiled. Nothing else in it is touched.
#include "fake_socket.hpp"
// The real header first, so its #pragma once keeps the redirection away from its declarations.
#include "../../core/src/sdk/plain_syscalls.hpp"

namespace echod::fake_plain {
inline ssize_t recv(int fd, char* data, std::size_t size, int flags) noexcept {
  return fake_socket::recv(fd, data, size, flags);
}
inline ssize_t send(int fd, const char* data, std::size_t size, int flags) noexcept {
  return fake_socket::send(fd, data, size, flags);
}
}  // namespace echod::fake_plain

#define plain fake_plain
#include "../../core/src/sdk/connection_buffer.cpp"
