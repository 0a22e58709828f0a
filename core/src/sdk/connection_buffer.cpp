#include "echod/connection_buffer.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "echod/errno_policy.hpp"

namespace echod {
namespace {

// Sends as much of [data, data+size) as the socket takes now. Returns bytes sent, or -1 with
// errno set (never EINTR).
ssize_t send_some(int fd, const char* data, std::size_t size) noexcept {
  std::size_t total = 0;
  while (total < size) {
    ssize_t n = ::send(fd, data + total, size - total, MSG_NOSIGNAL);
    if (n > 0) {
      total += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (total > 0) break;  // report the error on the next call
    return -1;
  }
  return static_cast<ssize_t>(total);
}

}  // namespace

IoStatus ConnectionBuffer::fail(int error) noexcept {
  error_ = error;
  switch (classify_errno(error)) {
    case ErrnoClass::kWouldBlock:
      return IoStatus::kWouldBlock;
    case ErrnoClass::kPeerGone:
    case ErrnoClass::kConnectionAborted:
      return IoStatus::kPeerGone;
    default:
      return IoStatus::kError;
  }
}

void ConnectionBuffer::enqueue(const char* data, std::size_t size) {
  if (sent_ > 0 && sent_ >= queue_.size() / 2) {
    // Compact before growing, so the queue stays near high_water + one scratch buffer.
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(sent_));
    sent_ = 0;
  }
  queue_.insert(queue_.end(), data, data + size);
}

IoStatus ConnectionBuffer::echo_once(int fd, std::span<char> scratch) noexcept {
  std::size_t room = high_water_ > pending() ? high_water_ - pending() : 0;
  std::size_t want = std::min(scratch.size(), std::max<std::size_t>(room, 1));
  ssize_t received;
  do {
    received = ::recv(fd, scratch.data(), want, 0);
  } while (received < 0 && errno == EINTR);
  if (received == 0) return IoStatus::kEof;
  if (received < 0) return fail(errno);

  const char* data = scratch.data();
  std::size_t size = static_cast<std::size_t>(received);
  bytes_received_ += size;
  if (!wants_write()) {
    ssize_t sent = send_some(fd, data, size);
    if (sent < 0) {
      IoStatus status = fail(errno);
      if (status != IoStatus::kWouldBlock) return status;
      sent = 0;
    }
    data += sent;
    size -= static_cast<std::size_t>(sent);
    bytes_sent_ += static_cast<std::size_t>(sent);
  }
  if (size > 0) {
    try {
      enqueue(data, size);
    } catch (const std::bad_alloc&) {
      return fail(ENOMEM);
    }
  }
  return IoStatus::kProgress;
}

IoStatus ConnectionBuffer::flush(int fd) noexcept {
  if (!wants_write()) return IoStatus::kProgress;
  ssize_t sent = send_some(fd, queue_.data() + sent_, pending());
  if (sent < 0) return fail(errno);
  sent_ += static_cast<std::size_t>(sent);
  bytes_sent_ += static_cast<std::size_t>(sent);
  if (pending() > 0) return IoStatus::kWouldBlock;
  // Caught up: give the memory back, so idle connections hold none.
  std::vector<char>().swap(queue_);
  sent_ = 0;
  return IoStatus::kProgress;
}

}  // namespace echod
