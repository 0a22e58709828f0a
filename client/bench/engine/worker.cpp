#include "engine/worker.hpp"

#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace echod::bench {
namespace {

constexpr int kMaxEvents = 512;
constexpr int kMaxReadsPerWakeup = 4;  // then let the other sockets have a turn
constexpr std::size_t kScratchBytes = 64 * 1024;
constexpr Nanos kLongestWait = 100 * kNanosPerMilli;  // stop requests are seen this fast
constexpr Nanos kDrainAfterStop = kNanosPerSecond;

// Kernels before 5.11 have no epoll_pwait2; found out once for the whole process.
std::atomic<bool> g_have_epoll_pwait2{true};

std::uint64_t pack_event_data(std::size_t slot, std::uint32_t generation) {
  return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(slot);
}

// Timeouts are checked by sweeping every connection this often: a twentieth of the shorter
// timeout, between 1 and 100 ms, so a timeout fires at most 5% late.
Nanos sweep_interval_for(Nanos connect_timeout, Nanos reply_timeout) {
  return std::clamp(std::min(connect_timeout, reply_timeout) / 20, kNanosPerMilli,
                    100 * kNanosPerMilli);
}

}  // namespace

Worker::Worker(const RunSetup& setup, RunControl& control, int thread_index,
               std::size_t connection_count)
    : options_(setup.options),
      control_(control),
      thread_index_(thread_index),
      setup_(setup),
      connect_timeout_(seconds_to_ns(setup.options.connect_timeout_s)),
      reply_timeout_(seconds_to_ns(setup.options.timeout_s)),
      sweep_interval_(sweep_interval_for(connect_timeout_, reply_timeout_)),
      events_(kMaxEvents),
      scratch_(kScratchBytes),
      intervals_(control.intervals(thread_index)) {
  const auto threads = static_cast<std::uint64_t>(options_.threads);
  connections_.reserve(connection_count);
  for (std::size_t i = 0; i < connection_count; ++i)
    connections_.emplace_back(static_cast<std::uint64_t>(thread_index) + i * threads);
}

void Worker::run() {
  // A descriptor table of this thread's own: while a table is shared by several threads, the
  // kernel takes and drops a reference on the file at every recv, send and epoll_wait (fdget's
  // slow path), two atomic writes to each socket's struct file per call, a cache miss apiece
  // at 1,000 connections. Every descriptor this worker uses is created below, in this thread,
  // and closed here before it returns (the table goes with the thread). Where unshare is
  // refused (a seccomp filter), the shared table only costs that.
  ::unshare(CLONE_FILES);
  const DescriptorsClosedOnReturn closed_on_return{*this};
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) {
    throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  }
  // Timers for scheduled sends should wake on time, not up to the default 50 us late.
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  next_sweep_ = now_ns() + sweep_interval_;
  run_workload();
  publish_progress();
  if (intervals_ != nullptr) {
    if (interval_ends_ != kNever) {
      interval_.errors = stats_.errors.total() - errors_before_interval_;
      intervals_->publish(std::move(interval_), IntervalMailbox::kAll);
    }
    intervals_->finish();
  }
}

Worker::DescriptorsClosedOnReturn::~DescriptorsClosedOnReturn() {
  for (Connection& connection : worker.connections_)
    connection.close();
  worker.epoll_.reset();
}

void Worker::connect(Connection& connection) {
  ++stats_.counters.connections_attempted;
  const SocketAddress* source = nullptr;
  if (!setup_.sources.empty()) {
    // Numbered across threads (thread + k * threads), so all threads together go round-robin.
    const std::uint64_t global = static_cast<std::uint64_t>(thread_index_) +
                                 connects_started_ * static_cast<std::uint64_t>(options_.threads);
    source = &setup_.sources[global % setup_.sources.size()];
  }
  ++connects_started_;
  if (const int error = connection.start_connect(setup_.target, source); error != 0) {
    stats_.errors.add(classify_connect_errno(error), error);
    failed_immediately_.push_back(slot_of(connection));
    return;
  }
  epoll_event event{};
  event.events = EPOLLOUT;
  event.data.u64 = pack_event_data(slot_of(connection), connection.generation());
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, connection.fd(), &event) != 0) {
    const int error = errno;
    connection.close();
    stats_.errors.add(ErrorKind::kConnectFailed, error);
    failed_immediately_.push_back(slot_of(connection));
    return;
  }
  connection.set_registered_events(EPOLLOUT);
  ++connecting_now_;
}

void Worker::connect_all() {
  const auto limit = static_cast<std::size_t>(
      std::max(1, options_.connect_concurrency / std::max(1, options_.threads)));
  // --connect-rate: this thread's share, paced from when it starts connecting.
  const double per_second = options_.connect_rate / options_.threads;
  const Nanos began = now_ns();
  const auto allowed_by = [&](Nanos now) -> std::size_t {
    if (per_second <= 0) return connections_.size();
    return 1 + static_cast<std::size_t>(ns_to_seconds(now - began) * per_second);
  };
  std::size_t next = 0;
  for (;;) {
    const Nanos now = now_ns();
    const std::size_t allowed = std::min(connections_.size(), allowed_by(now));
    while (next < allowed && connecting_now_ < limit && !stop_requested())
      connect(connections_[next++]);
    const bool settled = connecting_now_ == 0 && failed_immediately_.empty();
    if (settled && (next == connections_.size() || stop_requested())) return;
    Nanos wake = kNever;
    if (next < connections_.size() && per_second > 0) {
      wake = began + seconds_to_ns(static_cast<double>(next) / per_second);
    }
    poll_once(wake);
  }
}

bool Worker::send(Connection& connection, std::optional<Nanos> intended) {
  const Nanos now = now_ns();  // queued (closed loop), and just before the send() below
  connection.queue_message(options_.size, intended.value_or(now));
  ++stats_.counters.messages_sent;
  stats_.counters.bytes_sent += options_.size;
  ++in_flight_total_;
  if (const int error = connection.flush(now); error != 0) {
    fail(connection, classify_io_errno(error), error, now_ns());
    return false;
  }
  update_interest(connection);
  return true;
}

void Worker::close(Connection& connection) {
  if (connection.state() == Connection::State::kClosed) return;
  forget(connection, false, now_ns());
  connection.close();
}

void Worker::close_after_eof(Connection& connection) {
  connection.shutdown_write();
  update_interest(connection);
}

void Worker::close_all() {
  const Nanos now = now_ns();
  for (Connection& connection : connections_) {
    if (connection.state() == Connection::State::kOpen) ++stats_.counters.connections_open_at_end;
    if (connection.state() == Connection::State::kClosed) continue;
    forget(connection, false, now);
    connection.close();
  }
  publish_progress();
}

void Worker::forget(Connection& connection, bool failed, Nanos now) {
  const std::size_t owed = connection.in_flight();
  if (failed) {
    stats_.counters.messages_lost += owed;
  } else {
    stats_.counters.messages_cut_short += owed;
    // Not answered by now: each one's latency is at least what it has waited.
    connection.in_flight_messages().for_each([&](const Connection::Message& message) {
      record_unfinished(message.intended, message.sent, now);
    });
  }
  in_flight_total_ -= owed;
  if (connection.state() == Connection::State::kConnecting) --connecting_now_;
  if (connection.state() == Connection::State::kOpen) --open_now_;
}

void Worker::count_due_not_sent(Nanos intended, Nanos step, std::uint64_t count, Nanos stopped) {
  stats_.counters.messages_due_not_sent += count;
  for (std::uint64_t i = 0; i < count; ++i, intended += step)
    record_unfinished(intended, 0, stopped);
}

void Worker::record_unfinished(Nanos intended, Nanos sent, Nanos now) {
  if (intended < measure_from_ || intended >= measure_until_) return;
  stats_.latency.record(now - intended);
  if (sent != 0) stats_.latency_uncorrected.record(now - sent);
}

void Worker::schedule(Connection& connection, Nanos when) {
  timers_.push(
      Timer{when, static_cast<std::uint32_t>(slot_of(connection)), connection.generation()});
}

bool Worker::poll_until(const std::function<bool()>& done, Nanos deadline, OnStop on_stop) {
  for (;;) {
    if (done()) return true;
    if (on_stop == OnStop::kReturn && stop_requested()) return false;
    if (now_ns() >= deadline) return false;
    poll_once(deadline);
  }
}

void Worker::drain() {
  const Nanos now = now_ns();
  const Nanos deadline =
      now + (stop_requested() ? kDrainAfterStop : reply_timeout_ + 2 * sweep_interval_);
  poll_until([this] { return in_flight_total_ == 0; }, deadline, OnStop::kKeepGoing);
}

void Worker::begin_cpu_window(Nanos now) {
  stats_.window.start = now;
  cpu_at_window_start_ = thread_cpu_time();
  if (thread_index_ == 0 && control_.server_sampler() != nullptr) {
    control_.server_sampler()->request_start();
  }
}

void Worker::end_cpu_window(Nanos now) {
  if (stats_.window.start == kNever) return;
  stats_.window.end = now;
  stats_.window.client = thread_cpu_time() - cpu_at_window_start_;
  const double seconds = stats_.window.seconds();
  stats_.window.busiest_thread_fraction =
      seconds > 0 ? stats_.window.client.total_s() / seconds : 0;
  if (thread_index_ == 0 && control_.server_sampler() != nullptr) {
    control_.server_sampler()->request_end();
  }
}

int Worker::wait_for_events(Nanos wait) {
  if (g_have_epoll_pwait2.load(std::memory_order_relaxed)) {
    const timespec timeout{static_cast<time_t>(wait / kNanosPerSecond),
                           static_cast<long>(wait % kNanosPerSecond)};
    const int ready = ::epoll_pwait2(epoll_.get(), events_.data(), kMaxEvents, &timeout, nullptr);
    if (ready >= 0 || errno != ENOSYS) return ready;
    g_have_epoll_pwait2.store(false, std::memory_order_relaxed);
  }
  // Millisecond timeouts, rounded up so a timer never fires early.
  return ::epoll_wait(epoll_.get(), events_.data(), kMaxEvents,
                      static_cast<int>((wait + kNanosPerMilli - 1) / kNanosPerMilli));
}

void Worker::poll_once(Nanos wake_by) {
  Nanos now = now_ns();
  Nanos next = std::min({wake_by, next_sweep_, now + kLongestWait});
  if (!timers_.empty()) next = std::min(next, timers_.top().when);
  if (!failed_immediately_.empty()) next = now;
  const int ready = wait_for_events(std::max<Nanos>(0, next - now));
  if (ready < 0 && errno != EINTR) {
    throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
  }
  for (int i = 0; i < ready; ++i) {
    const epoll_event& event = events_[static_cast<std::size_t>(i)];
    const auto slot = static_cast<std::size_t>(event.data.u64 & 0xFFFFFFFFu);
    const auto generation = static_cast<std::uint32_t>(event.data.u64 >> 32);
    Connection& connection = connections_[slot];
    // An earlier event in this batch may have closed (and even reopened) this slot.
    if (connection.generation() != generation || connection.state() == Connection::State::kClosed) {
      continue;
    }
    handle_event(connection, event.events);
  }
  now = now_ns();
  while (!failed_immediately_.empty()) {
    std::vector<std::size_t> failed;
    failed.swap(failed_immediately_);
    for (std::size_t slot : failed)
      on_failed(connections_[slot], now);
  }
  fire_timers(now);
  if (now >= next_sweep_) {
    sweep_timeouts(now);
    next_sweep_ = now + sweep_interval_;
  }
  if (intervals_ != nullptr) roll_interval(now);
  publish_progress();
}

// Each event takes its own time where it needs one (reads take theirs per recv()): the last of
// 512 events is handled well after the first.
void Worker::handle_event(Connection& connection, std::uint32_t events) {
  if (connection.state() == Connection::State::kConnecting) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) connect_finished(connection, now_ns());
    return;
  }
  const std::uint32_t generation = connection.generation();
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_ready(connection);
  // Reading may have failed the connection, or a workload may have closed or reopened it.
  if (connection.generation() != generation || connection.state() != Connection::State::kOpen) {
    return;
  }
  if (events & EPOLLOUT) {
    if (const int error = connection.flush(); error != 0) {
      fail(connection, classify_io_errno(error), error, now_ns());
      return;
    }
    update_interest(connection);
  }
}

void Worker::connect_finished(Connection& connection, Nanos now) {
  if (const int error = connection.finish_connect(); error != 0) {
    fail(connection, classify_connect_errno(error), error, now);
    return;
  }
  --connecting_now_;
  ++open_now_;
  ++stats_.counters.connections_established;
  if (connection.connect_started() >= connects_measured_from_) {
    stats_.connect.record(now - connection.connect_started());
  }
  update_interest(connection);
  on_connected(connection, now);
}

void Worker::read_ready(Connection& connection) {
  const std::uint32_t generation = connection.generation();
  for (int round = 0; round < kMaxReadsPerWakeup; ++round) {
    const Connection::ReadResult result = connection.read_once(scratch_);
    stats_.counters.bytes_echoed += result.verified_bytes;
    // The echoes this read completed are timed by this read, not by the batch it came in.
    Connection::Message message;
    while (connection.generation() == generation && connection.pop_echoed(message)) {
      --in_flight_total_;
      count_echo(message, result.received_at);
      on_echoed(connection, message, result.received_at);
    }
    if (connection.generation() != generation || connection.state() != Connection::State::kOpen) {
      return;  // the workload closed it after its last echo
    }
    switch (result.status) {
      case Connection::ReadResult::Status::kOk:
        continue;
      case Connection::ReadResult::Status::kDrained:
        return;
      case Connection::ReadResult::Status::kEof:
        if (connection.awaiting_eof() && connection.in_flight() == 0) {
          forget(connection, false, result.received_at);
          connection.close();
          on_closed(connection, result.received_at);
        } else {
          fail(connection, ErrorKind::kClosedByPeer, 0, result.received_at);
        }
        return;
      case Connection::ReadResult::Status::kError:
        fail(connection, classify_io_errno(result.error), result.error, result.received_at);
        return;
      case Connection::ReadResult::Status::kMismatch:
        if (!stats_.errors.first_mismatch) stats_.errors.first_mismatch = result.mismatch;
        fail(connection, ErrorKind::kMismatch, 0, result.received_at);
        return;
    }
  }
}

void Worker::count_echo(const Connection::Message& message, Nanos now) {
  ++stats_.counters.messages_echoed;
  if (intervals_ != nullptr) {
    if (now >= interval_ends_ || interval_ends_ == kNever) roll_interval(now);
    ++interval_.messages;
    interval_.latency.record(now - message.intended);
  }
  if (message.intended < measure_from_ || message.intended >= measure_until_) return;
  ++stats_.counters.measured_messages;
  stats_.counters.measured_bytes += message.size;
  stats_.latency.record(now - message.intended);
  stats_.latency_uncorrected.record(now - message.sent);
}

// Hands the finished second (if any) to the runner and starts counting the one `now` is in.
void Worker::roll_interval(Nanos now) {
  if (now < interval_ends_ && interval_ends_ != kNever) return;
  const Nanos start = control_.run_start();
  if (start == 0 || now < start) return;
  const std::int64_t second = (now - start) / kNanosPerSecond;
  if (interval_ends_ != kNever) {
    interval_.errors = stats_.errors.total() - errors_before_interval_;
    intervals_->publish(std::move(interval_), second);
  }
  interval_ = IntervalStats{};
  interval_.second = second;
  interval_ends_ = start + (second + 1) * kNanosPerSecond;
  errors_before_interval_ = stats_.errors.total();
}

void Worker::fail(Connection& connection, ErrorKind kind, int error, Nanos now) {
  stats_.errors.add(kind, error);
  forget(connection, true, now);
  connection.close();
  on_failed(connection, now);
}

void Worker::update_interest(Connection& connection) {
  const std::uint32_t wanted = EPOLLIN | (connection.has_unsent() ? EPOLLOUT : 0u);
  if (wanted == connection.registered_events()) return;
  epoll_event event{};
  event.events = wanted;
  event.data.u64 = pack_event_data(slot_of(connection), connection.generation());
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.fd(), &event) == 0) {
    connection.set_registered_events(wanted);
  }
}

void Worker::fire_timers(Nanos now) {
  while (!timers_.empty() && timers_.top().when <= now) {
    const Timer timer = timers_.top();
    timers_.pop();
    Connection& connection = connections_[timer.slot];
    if (connection.generation() == timer.generation &&
        connection.state() == Connection::State::kOpen) {
      on_timer(connection, now);
    }
  }
}

void Worker::sweep_timeouts(Nanos now) {
  for (Connection& connection : connections_) {
    if (connection.state() == Connection::State::kConnecting &&
        now - connection.connect_started() >= connect_timeout_) {
      fail(connection, ErrorKind::kConnectTimeout, 0, now);
    } else if (connection.state() != Connection::State::kOpen) {
      continue;
    } else if (const Connection::Message* oldest = connection.oldest();
               oldest != nullptr && oldest->sent != 0 && now - oldest->sent >= reply_timeout_) {
      fail(connection, ErrorKind::kReplyTimeout, 0, now);
    } else if (connection.awaiting_eof() && connection.in_flight() == 0 &&
               now - connection.eof_wait_started() >= reply_timeout_) {
      fail(connection, ErrorKind::kReplyTimeout, 0, now);
    }
  }
}

void Worker::publish_progress() {
  ProgressSlot& slot = control_.progress(thread_index_);
  slot.open_connections.store(open_now_, std::memory_order_relaxed);
  slot.messages_echoed.store(stats_.counters.messages_echoed, std::memory_order_relaxed);
  slot.connections_completed.store(stats_.counters.connections_completed,
                                   std::memory_order_relaxed);
  slot.errors.store(stats_.errors.total(), std::memory_order_relaxed);
}

}  // namespace echod::bench
