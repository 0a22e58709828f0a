// steady and hold: persistent connections that send on a schedule.
//  - steady, closed loop (--rate 0): each connection keeps --depth messages in flight, sending
//    the next as soon as one comes back (ping-pong at depth 1, pipelined above).
//  - steady, open loop (--rate R): every connection has its own evenly spaced send times adding
//    up to R/s; a message whose turn comes while --depth are in flight waits, and its latency
//    still counts from the time it was meant to go (no coordinated omission).
//  - hold: the same schedule with one message per --interval per connection, depth 1.
#pragma once

#include <vector>

#include "engine/worker.hpp"

namespace echod::bench {

class StreamWorker final : public Worker {
 public:
  StreamWorker(const RunSetup& setup, RunControl& control, int thread_index);

 private:
  struct Schedule {
    Nanos next_send = 0;
    bool timer_armed = false;
  };

  void run_workload() override;
  void on_echoed(Connection& connection, const Connection::Message& message, Nanos now) override;
  void on_timer(Connection& connection, Nanos now) override;
  // Open loop, once sending has stopped: the sends that were due and never went out.
  void count_backlog(Nanos stopped);
  // Sends whatever is due and allowed on this connection, then arms its timer if needed.
  void pump(Connection& connection, Nanos now);

  const Nanos interval_;  // between one connection's sends; 0 = closed loop
  const std::size_t depth_;
  Nanos send_until_ = kNever;
  std::vector<Schedule> schedules_;
};

}  // namespace echod::bench
