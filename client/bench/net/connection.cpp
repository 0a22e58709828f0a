#include "net/connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/payload.hpp"

namespace echod::bench {
namespace {

// send() and recv() straight to the kernel. glibc's wrappers are thread-cancellation points,
// and in a multi-threaded process (echo-bench has its sampler thread) each call then takes two
// atomic updates of the thread's cancel state: about 2% of echo-bench's CPU per message in
// ping-pong. echo-bench never cancels a thread.
ssize_t send_plain(int fd, const char* data, std::size_t size) {
  return ::syscall(SYS_sendto, fd, data, size, MSG_NOSIGNAL, nullptr, 0);
}
ssize_t recv_plain(int fd, char* data, std::size_t size) {
  return ::syscall(SYS_recvfrom, fd, data, size, 0, nullptr, nullptr);
}

}  // namespace
namespace {

constexpr std::size_t kCompactAbove = 1 << 20;

}  // namespace

int Connection::start_connect(const SocketAddress& target, const SocketAddress* source) {
  close();
  ++generation_;
  fd_.reset(::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) return errno;
  const int one = 1;
  // Small messages go out at once: Nagle would hold pipelined ones back and measure the wait.
  ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (source != nullptr) {
    // Choose the port at connect() time, by the full 4-tuple: many source addresses then give
    // many times one address's ephemeral ports.
    ::setsockopt(fd_.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (::bind(fd_.get(), source->get(), source->length) != 0) {
      const int error = errno;
      fd_.reset();
      return error;
    }
  }
  connect_started_ = now_ns();
  if (::connect(fd_.get(), target.get(), target.length) != 0 && errno != EINPROGRESS) {
    const int error = errno;
    fd_.reset();
    return error;
  }
  state_ = State::kConnecting;
  return 0;
}

int Connection::finish_connect() {
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  if (error == 0) state_ = State::kOpen;
  return error;
}

void Connection::queue_message(std::size_t size, std::optional<Nanos> intended) {
  const std::uint64_t start = stream_base_ + outstanding_.size();
  append_payload(outstanding_, id_, start, size);
  in_flight_.push_back(Message{start, start + size, intended.value_or(now_ns()), 0,
                               static_cast<std::uint32_t>(size)});
  ++not_started_;
}

int Connection::flush(Nanos now) {
  for (bool first = true; written_ < outstanding_.size(); first = false) {
    // Latency without the schedule's wait, and the reply timeout, count from just before the
    // send() that carries a message's first byte: bytes held back by EAGAIN were not yet the
    // server's to answer, and loopback delivers to the server inside send() itself.
    const Nanos attempt = not_started_ == 0 ? 0 : first && now != 0 ? now : now_ns();
    const ssize_t sent =
        send_plain(fd_.get(), outstanding_.data() + written_, outstanding_.size() - written_);
    if (sent > 0) {
      written_ += static_cast<std::size_t>(sent);
      stamp_started(attempt);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return 0;
    } else if (errno != EINTR) {
      return errno;
    }
  }
  return 0;
}

void Connection::stamp_started(Nanos attempt) {
  const std::uint64_t written_to = stream_base_ + written_;
  for (std::size_t i = in_flight_.size() - not_started_;
       i < in_flight_.size() && in_flight_[i].start_offset < written_to; ++i) {
    in_flight_[i].sent = attempt;
    --not_started_;
  }
}

Connection::ReadResult Connection::read_once(std::span<char> scratch) {
  ReadResult result;
  ssize_t got = 0;
  do {
    got = recv_plain(fd_.get(), scratch.data(), scratch.size());
  } while (got < 0 && errno == EINTR);
  result.received_at = now_ns();
  if (got == 0) {
    result.status = ReadResult::Status::kEof;
    return result;
  }
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      result.status = ReadResult::Status::kDrained;
    } else {
      result.status = ReadResult::Status::kError;
      result.error = errno;
    }
    return result;
  }
  const auto received = static_cast<std::size_t>(got);
  // Only bytes already written can legitimately come back; anything past them is extra.
  const std::size_t comparable = std::min(received, written_ - echoed_);
  const char* expected = outstanding_.data() + echoed_;
  if (comparable < received || std::memcmp(expected, scratch.data(), comparable) != 0) {
    const auto first_difference = static_cast<std::size_t>(
        std::mismatch(expected, expected + comparable, scratch.data()).first - expected);
    result.status = ReadResult::Status::kMismatch;
    result.verified_bytes = first_difference;
    result.mismatch = MismatchDetail{
        id_, stream_base_ + echoed_ + first_difference,
        first_difference < comparable ? static_cast<unsigned char>(expected[first_difference]) : -1,
        static_cast<unsigned char>(scratch[first_difference])};
    echoed_ += first_difference;
    return result;
  }
  echoed_ += received;
  result.verified_bytes = received;
  // A short read drained the socket: level-triggered epoll says if more comes.
  result.status =
      received < scratch.size() ? ReadResult::Status::kDrained : ReadResult::Status::kOk;
  return result;
}

void Connection::shutdown_write() {
  ::shutdown(fd_.get(), SHUT_WR);
  eof_wait_started_ = now_ns();
}

bool Connection::pop_echoed(Message& message) {
  if (in_flight_.empty() || in_flight_.front().end_offset > stream_base_ + echoed_) return false;
  message = in_flight_.front();
  in_flight_.pop_front();
  compact();
  return true;
}

void Connection::compact() {
  if (echoed_ == outstanding_.size()) {  // everything came back: the usual case, and free
    stream_base_ += echoed_;
    outstanding_.clear();
    echoed_ = written_ = 0;
  } else if (echoed_ > kCompactAbove && echoed_ > outstanding_.size() / 2) {
    outstanding_.erase(0, echoed_);
    stream_base_ += echoed_;
    written_ -= echoed_;
    echoed_ = 0;
  }
}

void Connection::close() {
  fd_.reset();
  state_ = State::kClosed;
  registered_events_ = 0;
  stream_base_ += outstanding_.size();
  outstanding_.clear();
  echoed_ = written_ = 0;
  in_flight_.clear();
  not_started_ = 0;
  eof_wait_started_ = 0;
}

}  // namespace echod::bench
