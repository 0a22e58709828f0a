// systemd integration: listening sockets passed by socket activation (sd_listen_fds) and the
// service manager's notifications (sd_notify). Both are inert outside systemd: without
// LISTEN_FDS echod binds its own listener, without NOTIFY_SOCKET nothing is sent.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "listener.hpp"

namespace echod {

// The listener systemd passed (LISTEN_FDS/LISTEN_PID, unset from the environment afterwards so
// that forked workers do not see them), or nullopt when none was passed. Each passed descriptor
// must be a listening TCP stream socket (AF_INET/AF_INET6, SOCK_STREAM, SO_ACCEPTCONN); it is
// made nonblocking and close-on-exec like the listeners core opens itself. More than one passed
// socket is refused: several models serve listen_fds.front() only.
// Throws std::runtime_error with a one-line reason naming the descriptor.
std::optional<Listener> inherited_listener();

// Sends `state` ("READY=1", "STOPPING=1", "STATUS=...") when NOTIFY_SOCKET is set; returns
// whether it was sent. Thread-safe; async-signal-unsafe (call from normal threads only).
bool notify_service_manager(const std::string& state);

// Whether NOTIFY_SOCKET is set (checked once, at the first call, before any fork).
bool service_manager_listening();

}  // namespace echod
