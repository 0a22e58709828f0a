#include "echod/connection_buffer.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "echod/errno_policy.hpp"
#include "plain_syscalls.hpp"

namespace echod {
namespace {

// Sends as much of [data, data+size) as the socket takes now. Returns bytes sent, or -1 with
// errno set (never EINTR).
ssize_t send_some(int fd, const char* data, std::size_t size) noexcept {
  std::size_t total = 0;
  while (total < size) {
    ssize_t n = plain::send(fd, data + total, size - total, MSG_NOSIGNAL);
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

void ConnectionBuffer::reallocate(std::size_t capacity) {
  // for_overwrite: pages of a large ring stay untouched (and out of RSS) until bytes land there.
  auto ring = std::make_unique_for_overwrite<char[]>(capacity);
  const std::size_t first = std::min<std::size_t>(pending_, capacity_ - head_);
  if (pending_ > 0) {
    std::memcpy(ring.get(), ring_.get() + head_, first);
    std::memcpy(ring.get() + first, ring_.get(), pending_ - first);
  }
  ring_ = std::move(ring);
  capacity_ = static_cast<std::uint32_t>(capacity);
  head_ = 0;
}

void ConnectionBuffer::enqueue(const char* data, std::size_t size) {
  const std::size_t needed = pending_ + size;
  if (needed > kMaxQueued) throw std::bad_alloc();  // only a caller ignoring wants_read()
  if (needed > capacity_) {
    // First the tail of one read; once that fills, the whole high-water mark. More only if a
    // caller read past wants_read() (then double, so that misuse still costs amortized O(1)).
    std::size_t capacity = capacity_ == 0 ? needed : std::max<std::size_t>(needed, high_water_);
    if (capacity_ >= high_water_) {
      capacity = std::min(std::max(needed, std::size_t{2} * capacity_), kMaxQueued);
    }
    reallocate(capacity);
  }
  const std::size_t tail = (std::size_t{head_} + pending_) % capacity_;
  const std::size_t first = std::min(size, capacity_ - tail);
  std::memcpy(ring_.get() + tail, data, first);
  std::memcpy(ring_.get(), data + first, size - first);
  pending_ += static_cast<std::uint32_t>(size);
}

std::span<const char> ConnectionBuffer::unsent() {
  if (pending_ == 0) return {};
  if (std::size_t{head_} + pending_ > capacity_) reallocate(capacity_);  // wrapped: straighten
  return {ring_.get() + head_, pending_};
}

IoStatus ConnectionBuffer::echo_once(int fd, std::span<char> scratch, bool* emptied) noexcept {
  const std::size_t room = high_water_ > pending_ ? high_water_ - pending_ : 0;
  std::size_t want = std::min(scratch.size(), std::max<std::size_t>(room, 1));
  ssize_t received;
  do {
    received = plain::recv(fd, scratch.data(), want, 0);
  } while (received < 0 && errno == EINTR);
  if (received == 0) return IoStatus::kEof;
  if (received < 0) return fail(errno);

  const char* data = scratch.data();
  std::size_t size = static_cast<std::size_t>(received);
  if (emptied != nullptr) *emptied = size < want;
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
  }
  if (size > 0) {
    try {
      enqueue(data, size);
    } catch (const std::bad_alloc&) {
      bytes_received_ -= size;  // neither sent nor queued: lost with the connection, not counted
      return fail(ENOMEM);
    }
  }
  return IoStatus::kProgress;
}

IoStatus ConnectionBuffer::flush(int fd) noexcept {
  while (wants_write()) {
    // The oldest bytes up to the end of the ring, then (next turn) those that wrapped.
    const std::size_t contiguous = std::min(pending_, capacity_ - head_);
    const ssize_t sent = send_some(fd, ring_.get() + head_, contiguous);
    if (sent < 0) return fail(errno);
    const auto moved = static_cast<std::uint32_t>(sent);
    head_ = static_cast<std::uint32_t>((std::size_t{head_} + moved) % capacity_);
    pending_ -= moved;
    if (moved < contiguous) return IoStatus::kWouldBlock;
  }
  // Caught up: give the memory back, so idle connections hold none.
  ring_.reset();
  capacity_ = 0;
  head_ = 0;
  return IoStatus::kProgress;
}

}  // namespace echod
