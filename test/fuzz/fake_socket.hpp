// A scripted stand-in for one nonblocking socket, for the ConnectionBuffer fuzz target. The
// target compiles core's connection_buffer.cpp with its recv and send redirected here (see
// connection_buffer_under_fake.cpp), so the fuzz input decides every call's outcome: how many
// bytes arrive or are taken, EAGAIN, EINTR, a reset. Single-threaded, like the code under test.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "echod/errno_policy.hpp"  // included here, before the redirection below

namespace fake_socket {

inline constexpr int kFd = 1000;  // the only descriptor the fake answers for

struct State {
  // The fuzz input's remaining decision bytes; once used up, every call succeeds in full.
  const std::uint8_t* script = nullptr;
  std::size_t script_left = 0;
  std::deque<char> inbound;    // sent by the client, not yet received by the server
  bool client_done = false;    // the client shut down its sending side
  std::string outbound;        // everything the server's sends were credited with
  std::size_t received = 0;    // bytes recv() handed to the server
  std::size_t recv_limit = 0;  // the largest len recv() may be asked for (the scratch size)
  std::size_t room = 0;        // high-water mark minus queued bytes, set before each echo_once
  bool reset = false;          // a reset was injected: the connection is over
};
State& state();

ssize_t recv(int fd, void* buffer, std::size_t length, int flags);
ssize_t send(int fd, const void* buffer, std::size_t length, int flags);

}  // namespace fake_socket
