#include "workloads/churn_workload.hpp"

#include "workloads/workloads.hpp"

namespace echod::bench {

ChurnWorker::ChurnWorker(const RunSetup& setup, RunControl& control, int thread_index)
    : Worker(setup, control, thread_index,
             share_of(static_cast<std::size_t>(setup.options.workers), setup.options.threads,
                      thread_index)),
      loops_(connections_.size()) {}

void ChurnWorker::run_workload() {
  const Nanos start = control_.synchronize();
  measure_from_ = start + seconds_to_ns(options_.warmup_s);
  if (options_.duration_s > 0) {
    start_no_more_after_ = measure_from_ + seconds_to_ns(options_.duration_s);
  }
  set_measurement_window(measure_from_, kNever);
  measure_connects_from(measure_from_);

  for (Connection& connection : connections_) {
    loops_[slot_of(connection)].iterations_left = options_.iterations;
    loops_[slot_of(connection)].active = true;
    ++active_loops_;
    start_iteration(connection, now_ns());
  }
  const auto all_done = [this] { return active_loops_ == 0; };
  if (!poll_until(all_done, measure_from_)) begin_cpu_window(now_ns());
  poll_until(all_done);
  end_cpu_window(now_ns());
  if (active_loops_ != 0) drain();  // stopped early: let exchanges under way finish, briefly
  close_all();
}

void ChurnWorker::start_iteration(Connection& connection, Nanos now) {
  Loop& loop = loops_[slot_of(connection)];
  if (!loop.active) return;
  if (loop.iterations_left == 0 || stop_requested() || now >= start_no_more_after_) {
    loop.active = false;
    --active_loops_;
    return;
  }
  --loop.iterations_left;
  loop.exchanges_done = 0;
  loop.iteration_started = now_ns();
  connect(connection);
}

void ChurnWorker::on_connected(Connection& connection, Nanos now) {
  if (options_.exchanges == 0) {
    finish_iteration(connection, now);
  } else {
    send(connection);
  }
}

void ChurnWorker::on_echoed(Connection& connection, const Connection::Message&, Nanos now) {
  Loop& loop = loops_[slot_of(connection)];
  if (++loop.exchanges_done < options_.exchanges) {
    send(connection);
  } else {
    finish_iteration(connection, now);
  }
}

void ChurnWorker::on_failed(Connection& connection, Nanos now) {
  start_iteration(connection, now);  // a failed connection still used up its iteration
}

void ChurnWorker::finish_iteration(Connection& connection, Nanos /*now*/) {
  close_after_eof(connection);  // on_closed() carries on
}

void ChurnWorker::on_closed(Connection& connection, Nanos now) {
  ++stats_.counters.connections_completed;
  const Loop& loop = loops_[slot_of(connection)];
  if (loop.iteration_started >= measure_from_) {
    ++stats_.counters.measured_connections;
    stats_.connection_total.record(now - loop.iteration_started);
  }
  start_iteration(connection, now);
}

}  // namespace echod::bench
