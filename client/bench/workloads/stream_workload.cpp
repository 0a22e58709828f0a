#include "workloads/stream_workload.hpp"

#include <cmath>
#include <optional>

#include "workloads/workloads.hpp"

namespace echod::bench {
namespace {

Nanos interval_for(const Options& options) {
  if (options.workload == Workload::kHold) return seconds_to_ns(options.interval_s);
  if (options.rate <= 0) return 0;
  // R messages/s over C connections: each connection sends every C/R seconds.
  return std::max<Nanos>(1, seconds_to_ns(options.connections / options.rate));
}

}  // namespace

StreamWorker::StreamWorker(const RunSetup& setup, RunControl& control, int thread_index)
    : Worker(setup, control, thread_index,
             share_of(static_cast<std::size_t>(setup.options.connections), setup.options.threads,
                      thread_index)),
      interval_(interval_for(setup.options)),
      depth_(setup.options.workload == Workload::kHold
                 ? 1
                 : static_cast<std::size_t>(setup.options.depth)),
      schedules_(connections_.size()) {}

void StreamWorker::run_workload() {
  connect_all();
  const Nanos start = control_.synchronize();
  const Nanos measure_from = start + seconds_to_ns(options_.warmup_s);
  const Nanos measure_until = measure_from + seconds_to_ns(options_.duration_s);
  set_measurement_window(measure_from, measure_until);
  send_until_ = measure_until;

  // Spread the connections' first sends evenly over one interval, so an open-loop schedule is
  // a steady stream rather than C messages at once every interval.
  const auto total = static_cast<double>(options_.connections);
  for (Connection& connection : connections_) {
    if (connection.state() != Connection::State::kOpen) continue;
    schedules_[slot_of(connection)].next_send =
        start + static_cast<Nanos>(std::llround(static_cast<double>(connection.id()) *
                                                static_cast<double>(interval_) / total));
    pump(connection, now_ns());
  }

  const auto never = [] { return false; };
  poll_until(never, measure_from);
  begin_cpu_window(now_ns());
  poll_until(never, measure_until);
  const Nanos stopped = now_ns();
  end_cpu_window(stopped);
  send_until_ = std::min(send_until_, stopped);  // after a stop request, nothing new goes out
  count_backlog(stopped);
  drain();
  close_all();
}

void StreamWorker::count_backlog(Nanos stopped) {
  if (interval_ == 0) return;
  for (Connection& connection : connections_) {
    Schedule& plan = schedules_[slot_of(connection)];
    if (connection.state() != Connection::State::kOpen || plan.next_send >= send_until_) continue;
    const auto due =
        static_cast<std::uint64_t>((send_until_ - plan.next_send + interval_ - 1) / interval_);
    count_due_not_sent(plan.next_send, interval_, due, stopped);
    plan.next_send += static_cast<Nanos>(due) * interval_;
  }
}

void StreamWorker::on_echoed(Connection& connection, const Connection::Message&, Nanos now) {
  pump(connection, now);
}

void StreamWorker::on_timer(Connection& connection, Nanos now) {
  schedules_[slot_of(connection)].timer_armed = false;
  pump(connection, now);
}

void StreamWorker::pump(Connection& connection, Nanos now) {
  Schedule& plan = schedules_[slot_of(connection)];
  if (stop_requested()) send_until_ = std::min(send_until_, now);
  while (connection.state() == Connection::State::kOpen && connection.in_flight() < depth_) {
    std::optional<Nanos> intended;  // closed loop: from the moment it goes out
    if (interval_ == 0) {
      if (now >= send_until_) return;
    } else {
      if (plan.next_send > now || plan.next_send >= send_until_) break;
      intended = plan.next_send;  // may be in the past: the wait is part of its latency
      plan.next_send += interval_;
    }
    if (!send(connection, intended)) return;
  }
  if (interval_ != 0 && connection.state() == Connection::State::kOpen &&
      connection.in_flight() < depth_ && !plan.timer_armed && plan.next_send < send_until_) {
    plan.timer_armed = true;
    schedule(connection, plan.next_send);
  }
}

}  // namespace echod::bench
