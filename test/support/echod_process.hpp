// Running echod as a child process of a test.
//
// The child gets its own process group, stdin from /dev/null, and its stdout and stderr
// through pipes that a background thread keeps draining (so echod never blocks on a full pipe,
// however much it logs). No process outlives its owner: destruction kills and reaps echod and
// whatever it forked that is still in its process group.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "outcome.hpp"

#ifndef ECHOD_BINARY
#error "ECHOD_BINARY (the path of the echod under test) is set by the echod_test_support target"
#endif

namespace echod::test {

// How a child ended: its exit status, or 128 + the signal that killed it (as shells report).
using ExitStatus = int;

// A running echod server. Not copyable; owned and used by one thread (the test thread).
class EchodProcess {
 public:
  struct Options {
    std::string binary = ECHOD_BINARY;
    Millis ready_timeout{10000};  // for the "listening on" line
  };

  // Starts `binary args...`, adding "--bind 127.0.0.1" and "--port 0" unless `args` already
  // name a bind address or port, and waits for echod's line
  //   listening on ADDRESS:PORT model=NAME
  // If echod exits first or the line does not come in time, kills it and fails the current
  // test (REQUIRE) showing echod's stderr. Call only on the test thread.
  explicit EchodProcess(std::vector<std::string> args);
  EchodProcess(std::vector<std::string> args, Options options);
  EchodProcess(const EchodProcess&) = delete;
  EchodProcess& operator=(const EchodProcess&) = delete;
  // SIGKILLs and reaps echod (and its process group) if still running. When the test is
  // failing with an exception (REQUIRE), prints the tail of echod's stderr first.
  ~EchodProcess();

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] const std::string& host() const noexcept { return host_; }    // as logged
  [[nodiscard]] const std::string& model() const noexcept { return model_; }  // as logged
  [[nodiscard]] pid_t pid() const noexcept;

  // Everything echod wrote to stderr so far (its log; the oldest part is dropped past 8 MiB).
  [[nodiscard]] std::string log() const;
  // Waits until stderr contains `text`; false after `timeout`.
  [[nodiscard]] bool wait_for_log(std::string_view text, Millis timeout = kDefaultTimeout) const;

  // Sends `signo` to echod (not to its children). No effect once it has been reaped.
  void signal(int signo);
  // Waits for echod to exit and reaps it; nullopt if it is still running after `timeout`.
  // Once it exited, log() holds everything it wrote (what is still in the pipe is awaited for up
  // to 1 s). Once reaped, returns the same status again at once.
  std::optional<ExitStatus> wait_exit(Millis timeout);
  // The operator's stop: SIGTERM (a drain, over at once without clients) and, if echod is still
  // running 300 ms later, SIGTERM again (stop now); then wait_exit(timeout). Tests of the drain
  // itself send signal(SIGTERM) and wait as they need.
  std::optional<ExitStatus> stop(Millis timeout = Millis{10000});
  // True until echod has exited (does not reap).
  [[nodiscard]] bool running() const;

 private:
  struct Child;
  std::unique_ptr<Child> child_;
  std::uint16_t port_ = 0;
  std::string host_;
  std::string model_;
  int uncaught_at_start_;
};

// The counters of echod's one summary line at stop,
//   summary: accepted=A refused_max_connections=B ... bytes_out=H
// by name ("accepted" -> A). `error` says why there are none (no such line, two lines, a field
// that is not name=number).
struct StopSummary {
  std::string error;  // empty when the line was found and parsed
  std::map<std::string, long long> counts;
  // The named counter; -1 if the line lacks it (so a comparison with a real count fails).
  [[nodiscard]] long long operator[](const std::string& name) const;
};
[[nodiscard]] StopSummary stop_summary(const std::string& log);

struct RunResult {
  std::optional<ExitStatus> exit_status;  // nullopt: still running at the timeout, was killed
  std::string out;                        // its stdout
  std::string err;                        // its stderr
};

// Runs `binary args...` exactly as given (no --bind/--port added) to completion, e.g. for
// command-line tests. Never fails the test itself; safe on any thread.
[[nodiscard]] RunResult run_echod(const std::vector<std::string>& args,
                                  Millis timeout = kDefaultTimeout,
                                  const std::string& binary = ECHOD_BINARY);

// What `echod --model NAME --describe-model` reports.
struct ModelDescription {
  std::string error;  // empty on success; otherwise why describing failed, with echod's stderr
  std::string name;
  std::string summary;
  std::set<std::string> capabilities;  // "concurrent", "event-driven", "forks", "multi-threaded";
                                       // empty if none
  std::string file;
};

// Asks echod to describe `model`; `extra_args` are appended (e.g. "--plugin-dir=DIR").
[[nodiscard]] ModelDescription describe_model(const std::string& model,
                                              const std::vector<std::string>& extra_args = {},
                                              const std::string& binary = ECHOD_BINARY);

}  // namespace echod::test
