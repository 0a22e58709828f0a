// One client socket and everything it owes: the bytes queued to send, the bytes sent but not yet
// echoed (kept to compare the echo against), and the messages those bytes belong to. The echo
// may come back in any split, so bytes are checked as they arrive and a message counts as
// echoed only when its last byte is back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "echod/fd.hpp"
#include "engine/clock.hpp"
#include "net/addresses.hpp"
#include "net/ring_queue.hpp"
#include "report/error_counts.hpp"

namespace echod::bench {

// Owned by one worker thread, which alone touches it. Non-copyable (it owns a socket).
class Connection {
 public:
  enum class State : std::uint8_t { kClosed, kConnecting, kOpen };

  struct Message {
    std::uint64_t start_offset = 0;  // stream offset of its first byte
    std::uint64_t end_offset = 0;    // stream offset just past its last byte
    Nanos intended = 0;              // when the schedule wanted it sent (closed loop: queued)
    Nanos sent = 0;  // just before the send() of its first byte; 0 while all of it waits
    std::uint32_t size = 0;
  };

  // What one recv() brought.
  struct ReadResult {
    enum class Status : std::uint8_t {
      kOk,        // bytes arrived and matched; there may be more
      kDrained,   // nothing more to read now (EAGAIN), or a short read
      kEof,       // the server closed its side
      kError,     // errno in `error`
      kMismatch,  // a byte differs, or more came back than was sent
    } status = Status::kOk;
    int error = 0;                   // errno for kError
    std::size_t verified_bytes = 0;  // bytes that arrived and matched
    Nanos received_at = 0;           // taken right after this recv(), for the echoes it ends
    MismatchDetail mismatch;         // for kMismatch
  };

  explicit Connection(std::uint64_t id) : id_(id) {}
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts a nonblocking connect from `source` (may be null), timed from just before connect().
  // Returns 0 when under way, or the errno of an immediate failure (the socket is then closed).
  int start_connect(const SocketAddress& target, const SocketAddress* source);
  // After the socket turned writable while connecting: 0 when connected, else the errno.
  int finish_connect();

  // Queues one message (unique contents) for sending; its corrected latency counts from
  // `intended` (the schedule's send time) if given, else from now. flush() hands it to the
  // kernel.
  void queue_message(std::size_t size, std::optional<Nanos> intended);
  // Writes whatever the socket takes, stamping each message whose first byte goes out with the
  // time it did. 0, or the errno of a failed send. `now`, if the caller just read the clock,
  // stands for the first send()'s time (one clock read per message less in ping-pong).
  int flush(Nanos now = 0);
  // One recv(), its bytes verified against what was sent.
  ReadResult read_once(std::span<char> scratch);
  // Sends FIN (no more bytes from us): after the last echo, to read until the server's EOF and
  // catch anything it sends past the echo.
  void shutdown_write();
  // Takes the oldest message if all its bytes are back.
  bool pop_echoed(Message& message);
  void close();

  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] State state() const noexcept { return state_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  // Bumped by every start_connect, so events for an earlier socket in this slot can be ignored.
  [[nodiscard]] std::uint32_t generation() const noexcept { return generation_; }
  [[nodiscard]] Nanos connect_started() const noexcept { return connect_started_; }
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_.size(); }
  [[nodiscard]] const RingQueue<Message>& in_flight_messages() const noexcept { return in_flight_; }
  // After shutdown_write(): waiting for the server's EOF, since `eof_wait_started()`.
  [[nodiscard]] bool awaiting_eof() const noexcept { return eof_wait_started_ != 0; }
  [[nodiscard]] Nanos eof_wait_started() const noexcept { return eof_wait_started_; }
  [[nodiscard]] const Message* oldest() const noexcept {
    return in_flight_.empty() ? nullptr : &in_flight_.front();
  }
  [[nodiscard]] bool has_unsent() const noexcept { return written_ < outstanding_.size(); }

  // The epoll events this socket is registered for; maintained by the worker.
  [[nodiscard]] std::uint32_t registered_events() const noexcept { return registered_events_; }
  void set_registered_events(std::uint32_t events) noexcept { registered_events_ = events; }

 private:
  void compact();
  // Gives the messages whose first byte has now been written their send time.
  void stamp_started(Nanos attempt);

  std::uint64_t id_;  // global connection number: payload contents and error reports
  Fd fd_;
  State state_ = State::kClosed;
  std::uint32_t generation_ = 0;
  std::uint32_t registered_events_ = 0;
  Nanos connect_started_ = 0;
  Nanos eof_wait_started_ = 0;

  // outstanding_[0, echoed_) came back; [echoed_, written_) is with the server; [written_, end)
  // is not sent yet. stream_base_ is the stream offset of outstanding_[0]; it is never reset,
  // so a reopened slot carries on with fresh contents.
  std::string outstanding_;
  std::size_t echoed_ = 0;
  std::size_t written_ = 0;
  std::uint64_t stream_base_ = 0;
  RingQueue<Message> in_flight_;
  std::size_t not_started_ = 0;  // the newest messages in in_flight_ with no byte written yet
};

}  // namespace echod::bench
