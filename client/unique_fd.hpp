// A file descriptor that closes itself. echo-bench keeps its own (rather than echod's Fd) so it
// never depends on echod's libraries.
#pragma once

#include <unistd.h>

#include <utility>

namespace echod::bench {

// Move-only; owned by whichever object (and so thread) holds it.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }

  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);  // not retried on EINTR: Linux releases the descriptor anyway
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace echod::bench
