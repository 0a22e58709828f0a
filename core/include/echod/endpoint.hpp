// What echod promises as an endpoint, whatever the model: connection caps (global and per
// client address), TCP keepalive and user timeout on every accepted socket, the phases of a
// graceful drain, the lingering close at its deadline, and the counters of the stop summary.
//
// One Endpoint is created by core before the model runs. Its state lives in an anonymous shared
// mapping, so the counts hold across the threads of a model and across the processes a forking
// model starts: a connection admitted in a prefork worker counts against the same cap as one in
// the parent. Acceptor admits every connection through it, so a model gets the caps for free.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "echod/fd.hpp"

namespace echod {

// An address prefix, e.g. 127.0.0.0/8 or ::1/128; IPv4 is held as IPv4-mapped IPv6.
struct AddressRange {
  in6_addr prefix{};
  int bits = 128;
  // Parses "ADDR" or "ADDR/BITS"; false if it is neither.
  static bool parse(const std::string& text, AddressRange& range);
  [[nodiscard]] bool contains(const in6_addr& address) const noexcept;
};

struct EndpointLimits {
  std::size_t max_connections = 16384;
  std::size_t max_per_ip = 256;                     // 0: no per-address cap
  std::vector<AddressRange> per_ip_exempt;          // addresses the per-address cap does not count
  std::chrono::milliseconds idle_timeout{300'000};  // 0: off
  std::chrono::milliseconds tcp_keepalive{0};       // 0: off
  std::chrono::milliseconds tcp_user_timeout{0};    // 0: off
  std::chrono::milliseconds linger{2000};  // lingering close at the drain deadline, at most
};

// Where a server is in its life. Set by core's signal handlers (in the shared mapping, so
// forked children see it too); read by models through Endpoint.
enum class Phase : int {
  kServing = 0,
  kDraining = 1,     // first signal: listeners shut, open connections served on
  kFinishing = 2,    // the drain deadline passed: flush, FIN, lingering close
  kStoppingNow = 3,  // a second signal, or no drain configured: close at once
};

class Endpoint;

// One connection's place under the caps. Move-only; releases the place when destroyed (or
// release()d). Owned by whoever owns the connection's socket.
class Admission {
 public:
  Admission() noexcept = default;
  Admission(Admission&& other) noexcept
      : endpoint_(std::exchange(other.endpoint_, nullptr)),
        slot_(other.slot_),
        failed_(other.failed_) {}
  Admission& operator=(Admission&& other) noexcept {
    if (this != &other) {
      release();
      endpoint_ = std::exchange(other.endpoint_, nullptr);
      slot_ = other.slot_;
      failed_ = other.failed_;
    }
    return *this;
  }
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;
  ~Admission() { release(); }

  [[nodiscard]] bool valid() const noexcept { return endpoint_ != nullptr; }
  // The connection ended on an I/O error (reset, broken pipe, any errno but EAGAIN/EINTR from
  // recv or send): when the place is released it counts as an error rather than as a close by
  // the client or the drain. Call before release() (or before the Admission is destroyed).
  // Nothing is written until then, so this costs the hot path nothing.
  void mark_failed() noexcept { failed_ = true; }
  void release() noexcept;

 private:
  friend class Endpoint;
  Admission(Endpoint* endpoint, std::uint32_t slot) noexcept : endpoint_(endpoint), slot_(slot) {}
  Endpoint* endpoint_ = nullptr;
  std::uint32_t slot_ = 0;
  bool failed_ = false;
};

// Counters of the stop summary, summed over every thread and process.
struct EndpointCounts {
  std::uint64_t accepted = 0;
  std::uint64_t refused_max_connections = 0;
  std::uint64_t refused_per_ip = 0;
  std::uint64_t shed_emfile = 0;
  std::uint64_t closed_idle = 0;
  std::uint64_t drained = 0;
  // Admitted connections that ended on an I/O error (Admission::mark_failed).
  std::uint64_t errors = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t open = 0;
};

// Shared by every thread of a model (thread-safe) and inherited by forked children.
class Endpoint {
 public:
  // Throws std::system_error if the shared mapping cannot be made.
  Endpoint(EndpointLimits limits, std::shared_ptr<spdlog::logger> log);
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;
  ~Endpoint();

  [[nodiscard]] const EndpointLimits& limits() const noexcept { return limits_; }
  // How long a stop should wait for a thread or child that is finishing its connections
  // (a Finisher's lingering close) before giving up on it.
  [[nodiscard]] std::chrono::milliseconds finish_grace() const noexcept {
    return limits_.linger + std::chrono::milliseconds(1000);
  }

  // For a freshly accepted socket: applies keepalive and user timeout, and takes a place under
  // the caps. An invalid Admission means refused (counted, warned at most once a second): the
  // caller closes the socket at once.
  Admission admit(int fd, const sockaddr_storage& peer, socklen_t peer_size) noexcept;

  // Counters kept where the events happen.
  void count_shed(std::uint64_t connections) noexcept;
  void count_idle_close() noexcept;
  void count_bytes(std::uint64_t in, std::uint64_t out) noexcept;
  [[nodiscard]] EndpointCounts counts() const noexcept;
  [[nodiscard]] std::string summary() const;

  [[nodiscard]] Phase phase() const noexcept;
  [[nodiscard]] bool draining() const noexcept { return phase() != Phase::kServing; }
  // Where core's signal handlers write the phase (async-signal-safe: a lock-free atomic).
  [[nodiscard]] std::atomic<int>* phase_cell() noexcept;
  // The open connections, readable from a signal handler (a lock-free mirror of counts().open).
  [[nodiscard]] const std::atomic<std::uint32_t>* open_cell() const noexcept;

  // A forking model's parent, after reaping a child that may have died holding connections:
  // gives back every place that child had taken.
  void release_owned_by(pid_t pid) noexcept;

 private:
  friend class Admission;
  struct Shared;
  void release_slot(std::uint32_t slot, bool failed) noexcept;
  template <typename Describe>
  void warn_refused(std::atomic<std::int64_t>& last, Describe&& describe) noexcept;

  EndpointLimits limits_;
  std::shared_ptr<spdlog::logger> log_;
  Shared* shared_ = nullptr;
  std::size_t mapping_size_ = 0;
};

inline void Admission::release() noexcept {
  if (endpoint_ != nullptr) std::exchange(endpoint_, nullptr)->release_slot(slot_, failed_);
}

// The end of connections at a stop. At the drain deadline (Phase::kFinishing) each connection
// gets a lingering close: what was read is sent, then FIN, then what the client still sends is
// read and dropped until its FIN or limits().linger passes, so that closing does not reset a
// connection the client is still reading. At any other stop the sockets just close.
// Owned by one thread; a model may use one per thread.
class Finisher {
 public:
  explicit Finisher(Endpoint& endpoint) noexcept : endpoint_(endpoint) {}
  Finisher(const Finisher&) = delete;
  Finisher& operator=(const Finisher&) = delete;
  ~Finisher() = default;

  // Takes the socket and the bytes received on it but not yet echoed.
  void add(Fd socket, std::span<const char> unsent);
  // Flushes, shuts down and drains every added socket in one poll() loop, then closes them;
  // returns when all are done or the linger time has passed.
  void run() noexcept;

 private:
  struct Pending {
    Fd socket;
    std::vector<char> unsent;
    std::size_t sent = 0;
    bool shut = false;  // FIN sent; now reading until the client's FIN
  };
  Endpoint& endpoint_;
  std::vector<Pending> pending_;
};

}  // namespace echod
