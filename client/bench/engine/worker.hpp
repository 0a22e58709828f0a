// The engine under every workload: one thread, one epoll instance, a set of connections, and
// the bookkeeping every workload shares (connecting, sending, verifying echoes, timeouts,
// timers, counting). A workload subclass writes its phases in run_workload() and reacts to the
// on_* events.
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <vector>

#include "cli/options.hpp"
#include "echod/fd.hpp"
#include "engine/clock.hpp"
#include "engine/run_control.hpp"
#include "net/addresses.hpp"
#include "net/connection.hpp"
#include "report/stats.hpp"

namespace echod::bench {

// Read-only description of the run, shared by every worker.
struct RunSetup {
  Options options;
  SocketAddress target;                 // the address every connection goes to
  std::vector<SocketAddress> resolved;  // every address --host resolved to (target among them)
  std::vector<SocketAddress> sources;   // empty: let the kernel choose
};

// Owned by the runner; run() executes on exactly one worker thread, which then owns everything
// inside until it returns. stats() is read only after that thread has joined.
class Worker {
 public:
  Worker(const RunSetup& setup, RunControl& control, int thread_index,
         std::size_t connection_count);
  virtual ~Worker() = default;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The thread body.
  void run();
  [[nodiscard]] const WorkerStats& stats() const { return stats_; }

 protected:
  enum class OnStop { kReturn, kKeepGoing };

  virtual void run_workload() = 0;
  virtual void on_connected(Connection& /*connection*/, Nanos /*now*/) {}
  // A connection told to close_after_eof() saw the server's EOF with nothing extra before it;
  // it is closed now. The workload's default treats it like any close.
  virtual void on_closed(Connection& /*connection*/, Nanos /*now*/) {}
  // A whole message came back verified (already counted and timed).
  virtual void on_echoed(Connection& /*connection*/, const Connection::Message& /*message*/,
                         Nanos /*now*/) {}
  // The connection failed (error counted) and is closed.
  virtual void on_failed(Connection& /*connection*/, Nanos /*now*/) {}
  virtual void on_timer(Connection& /*connection*/, Nanos /*now*/) {}

  // Starts connecting; failures (immediate or later) arrive as on_failed.
  void connect(Connection& connection);
  // Opens every connection, at most --connect-concurrency (this thread's share) at a time, and
  // returns when each one is established or has failed.
  void connect_all();
  // Queues one message and writes it; its latency counts from `intended` (the schedule's send
  // time) if given, else from now. False when that failed the connection.
  bool send(Connection& connection, std::optional<Nanos> intended = std::nullopt);
  // Closes on purpose (not an error); anything still in flight is cut short.
  void close(Connection& connection);
  // Half-closes after the last echo and reads to the server's EOF, so bytes it sends past the
  // echo are caught (as a mismatch); then closes and calls on_closed(). No EOF within --timeout
  // is a reply timeout.
  void close_after_eof(Connection& connection);
  // Closes everything still open; what is still in flight is cut short, and its latency
  // recorded as at least the time it has waited so far.
  void close_all();
  // Open loop: `count` sends the schedule wanted at intended, intended + step, ... that never
  // went out before sending stopped at `stopped`; their latency is at least stopped - intended.
  void count_due_not_sent(Nanos intended, Nanos step, std::uint64_t count, Nanos stopped);
  // Calls on_timer(connection) at `when` unless the connection is closed by then.
  void schedule(Connection& connection, Nanos when);

  // Runs the event loop until done() holds or `deadline` passes, or a stop is requested (unless
  // told to keep going). True when done() held.
  bool poll_until(const std::function<bool()>& done, Nanos deadline = kNever,
                  OnStop on_stop = OnStop::kReturn);
  // Waits for every message in flight to come back: up to the reply timeout (which then fires
  // for any that do not), or one second after a stop request.
  void drain();

  // Echoes of messages meant to be sent inside [from, until) are measured (latency histograms
  // and measured counts); connects started at or after `connects_from` are timed.
  void set_measurement_window(Nanos from, Nanos until) {
    measure_from_ = from;
    measure_until_ = until;
  }
  void measure_connects_from(Nanos from) { connects_measured_from_ = from; }
  // The CPU-time window: the busy-thread check uses it, and thread 0 asks the server CPU
  // sampler (its own thread) to read the server's CPU at both edges.
  void begin_cpu_window(Nanos now);
  void end_cpu_window(Nanos now);

  [[nodiscard]] bool stop_requested() const { return control_.stop_requested(); }
  [[nodiscard]] std::size_t slot_of(const Connection& connection) const {
    return static_cast<std::size_t>(&connection - connections_.data());
  }

  const Options& options_;
  RunControl& control_;
  const int thread_index_;
  std::vector<Connection> connections_;  // slot i holds global connection thread + i * threads
  WorkerStats stats_;
  std::size_t in_flight_total_ = 0;  // messages sent and not yet echoed, over all connections

 private:
  struct Timer {
    Nanos when;
    std::uint32_t slot;
    std::uint32_t generation;
    bool operator>(const Timer& other) const { return when > other.when; }
  };

  void poll_once(Nanos wake_by);
  int wait_for_events(Nanos wait);
  void handle_event(Connection& connection, std::uint32_t events);
  void connect_finished(Connection& connection, Nanos now);
  void read_ready(Connection& connection);
  void count_echo(const Connection::Message& message, Nanos now);
  void record_unfinished(Nanos intended, Nanos sent, Nanos now);
  void fail(Connection& connection, ErrorKind kind, int error, Nanos now);
  // Takes a connection out of the books kept across connections; what it still owed is lost
  // (it failed) or cut short (closed on purpose).
  void forget(Connection& connection, bool failed, Nanos now);
  void roll_interval(Nanos now);
  void update_interest(Connection& connection);
  void fire_timers(Nanos now);
  void sweep_timeouts(Nanos now);
  void publish_progress();

  // Closes every descriptor of this worker in the worker's thread (whose private descriptor
  // table they live in), also when run() leaves by an exception.
  struct DescriptorsClosedOnReturn {
    Worker& worker;
    ~DescriptorsClosedOnReturn();
  };

  const RunSetup& setup_;
  const Nanos connect_timeout_;
  const Nanos reply_timeout_;
  const Nanos sweep_interval_;
  Fd epoll_;
  std::vector<epoll_event> events_;
  std::vector<char> scratch_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::vector<std::size_t> failed_immediately_;  // on_failed runs from the loop, not recursively
  Nanos next_sweep_ = 0;
  std::size_t connecting_now_ = 0;
  std::size_t open_now_ = 0;
  std::uint64_t connects_started_ = 0;
  Nanos measure_from_ = 0;
  Nanos measure_until_ = kNever;
  Nanos connects_measured_from_ = 0;
  CpuTime cpu_at_window_start_;
  IntervalMailbox* intervals_;  // null: no per-second statistics wanted
  IntervalStats interval_;
  Nanos interval_ends_ = kNever;
  std::uint64_t errors_before_interval_ = 0;
};

}  // namespace echod::bench
