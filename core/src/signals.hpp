// Turns SIGINT/SIGTERM into a readable descriptor and makes SIGPIPE harmless.
#pragma once

namespace echod {

// Installs the handlers once per process. The returned descriptor becomes readable on the first
// SIGINT or SIGTERM and stays readable (it is never drained), so every loop, thread and forked
// child polling it sees the stop. After a stop, the process must finish within
// `stop_timeout_seconds` or it exits with status 1 and a message: a wedged model cannot hang a
// shutdown.
int install_stop_signals(unsigned stop_timeout_seconds);

}  // namespace echod
