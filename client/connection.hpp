// One client socket and everything it owes: the bytes queued to send, the bytes sent but not yet
// echoed (kept to compare the echo against), and the messages those bytes belong to. The echo
// may come back in any split, so bytes are checked as they arrive and a message counts as
// echoed only when its last byte is back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>

#include "addresses.hpp"
#include "clock.hpp"
#include "error_counts.hpp"
#include "echod/fd.hpp"

namespace echod::bench {

// Owned by one worker thread, which alone touches it. Non-copyable (it owns a socket).
class Connection {
 public:
  enum class State : std::uint8_t { kClosed, kConnecting, kOpen };

  struct Message {
    std::uint64_t end_offset = 0;  // stream offset just past its last byte
    Nanos intended = 0;            // when the schedule wanted it sent
    Nanos sent = 0;                // when it was handed to the socket
    std::uint32_t size = 0;
  };

  struct ReadResult {
    enum class Status : std::uint8_t { kOk, kEof, kError, kMismatch } status = Status::kOk;
    int error = 0;                   // errno for kError
    std::size_t verified_bytes = 0;  // bytes that arrived and matched
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

  // Queues one message (unique contents) for sending, timed from now unless `intended` (the
  // schedule's send time) is given; flush() hands it to the kernel.
  void queue_message(std::size_t size, std::optional<Nanos> intended);
  // Writes whatever the socket takes. 0, or the errno of a failed send.
  int flush();
  // Reads what is there (until the socket is drained, within reason) and verifies it.
  ReadResult read(std::span<char> scratch);
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
  [[nodiscard]] const Message* oldest() const noexcept {
    return in_flight_.empty() ? nullptr : &in_flight_.front();
  }
  [[nodiscard]] bool has_unsent() const noexcept { return written_ < outstanding_.size(); }

  // The epoll events this socket is registered for; maintained by the worker.
  [[nodiscard]] std::uint32_t registered_events() const noexcept { return registered_events_; }
  void set_registered_events(std::uint32_t events) noexcept { registered_events_ = events; }

 private:
  void compact();

  std::uint64_t id_;  // global connection number: payload contents and error reports
  Fd fd_;
  State state_ = State::kClosed;
  std::uint32_t generation_ = 0;
  std::uint32_t registered_events_ = 0;
  Nanos connect_started_ = 0;
  std::uint64_t next_sequence_ = 0;  // never reset, so a reopened slot sends fresh contents

  // outstanding_[0, echoed_) came back; [echoed_, written_) is with the server; [written_, end)
  // is not sent yet. stream_base_ is the stream offset of outstanding_[0].
  std::string outstanding_;
  std::size_t echoed_ = 0;
  std::size_t written_ = 0;
  std::uint64_t stream_base_ = 0;
  std::deque<Message> in_flight_;
};

}  // namespace echod::bench
