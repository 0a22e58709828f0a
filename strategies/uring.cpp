// uring: one thread, completions from io_uring instead of readiness. Each connection has one
// recv into a shared ring of provided buffers (multishot, capped below the high-water mark, while
// nothing is queued; single-shot, sized to the room left, while something is) and at most one
// send in flight, sent straight from the buffer the bytes arrived in; the loop submits and reaps
// in one io_uring_enter per iteration (DEFER_TASKRUN: completions run only when the loop asks).
// Saves epoll's readiness round trip (epoll_wait, then recv, then send); loses where io_uring is
// disabled (seccomp, kernel.io_uring_disabled) and, like epoll, when per-message work is heavy.
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "echod/acceptor.hpp"
#include "echod/errno_policy.hpp"
#include "echod/idle_list.hpp"
#include "echod/options.hpp"
#include "echod/server_model.hpp"

// liburing 2.3's headers predate these (kernel 6.12 and later): defined by hand.
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

namespace {

using namespace echod;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

// io_uring_getevents_arg as of kernel 6.12: the former `pad` is the minimum wait.
struct GeteventsArg {
  __u64 sigmask;
  __u32 sigmask_sz;
  __u32 min_wait_usec;
  __u64 ts;
};
static_assert(sizeof(GeteventsArg) == sizeof(io_uring_getevents_arg));

// Kernel 6.17 caps a multishot recv's total bytes with sqe->optlen (the multishot ends, without
// IORING_CQE_F_MORE, once that many are in). liburing 2.3 calls that field file_index.
void set_multishot_total_cap(io_uring_sqe& sqe, __u32 bytes) noexcept {
  sqe.file_index = bytes;
}

struct Options {
  int queue_depth = 1024;     // submission queue entries
  int buffers = 256;          // provided receive buffers, shared by every connection
  int buffer_size = 16384;    // bytes each
  int batch = 32;             // completions to wait for, at most (see submit_and_wait)
  int min_wait_us = 50;       // how long to wait for a whole batch (kernel 6.12); 0: off
  bool defer_taskrun = true;  // SINGLE_ISSUER | DEFER_TASKRUN (else COOP_TASKRUN)
  bool register_ring = true;  // io_uring_register_ring_fd: no fdget of the ring per enter
  bool fixed_files = false;   // sockets in the ring's file table: no file reference per request
  bool multishot = true;      // multishot recv while nothing is queued (if the kernel caps it)
};

// What a completion is for: a connection's recv or send (the pointer's low bits say which) or
// one of these small numbers.
enum : __u64 { kStop = 1, kDrain = 2, kIgnore = 3, kProbe = 4, kListener = 16 };
enum : __u64 { kRecv = 0, kSend = 1, kTagMask = 7 };
constexpr unsigned kBufferGroup = 0;

// A completion copied out of the ring, so that its slot goes back to the kernel at once.
struct Completion {
  __u64 user_data;
  int result;
  unsigned flags;
};

// The ring of provided receive buffers: the kernel picks one per recv completion; the loop
// hands it back once its bytes are sent or copied. Owned by the loop thread.
class BufferPool {
 public:
  BufferPool() = default;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool() {
    if (ring_ != nullptr) ::munmap(ring_, ring_bytes_);
    if (data_ != nullptr) ::munmap(data_, data_bytes_);
  }

  // Maps the buffers and registers them with `ring`; an errno value on failure.
  int setup(io_uring& ring, unsigned count, unsigned size) {
    count_ = count;
    size_ = size;
    ring_bytes_ = count * sizeof(io_uring_buf);
    data_bytes_ = std::size_t{count} * size;
    void* ring_memory =
        ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring_memory == MAP_FAILED) return errno;
    ring_ = static_cast<io_uring_buf_ring*>(ring_memory);
    void* data =
        ::mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) return errno;
    data_ = static_cast<char*>(data);
    // Touched now, so that the pool is a fixed cost from the start rather than RSS that grows
    // with traffic as the kernel cycles through the buffers.
    std::memset(data_, 0, data_bytes_);
    io_uring_buf_ring_init(ring_);
    io_uring_buf_reg registration{};
    registration.ring_addr = reinterpret_cast<__u64>(ring_);
    registration.ring_entries = count;
    registration.bgid = kBufferGroup;
    if (const int error = io_uring_register_buf_ring(&ring, &registration, 0); error < 0) {
      return -error;
    }
    for (unsigned id = 0; id < count; ++id)
      give_back(static_cast<unsigned short>(id));
    publish();
    return 0;
  }

  [[nodiscard]] char* data(unsigned short id) const noexcept {
    return data_ + std::size_t{id} * size_;
  }
  [[nodiscard]] unsigned buffer_size() const noexcept { return size_; }
  // A connection may keep a buffer until its send is done while half the pool is still free;
  // past that, bytes are copied and the buffer goes straight back, so that many pending echoes
  // cannot starve every recv of buffers.
  [[nodiscard]] bool may_hold() const noexcept { return held_ < count_ / 2; }
  void hold() noexcept { ++held_; }
  void release_held(unsigned short id) noexcept {
    --held_;
    give_back(id);
  }
  // Queued for the kernel; visible to it at publish().
  void give_back(unsigned short id) noexcept {
    io_uring_buf_ring_add(ring_, data(id), size_, id, io_uring_buf_ring_mask(count_), added_++);
  }
  void publish() noexcept {
    if (added_ == 0) return;
    io_uring_buf_ring_advance(ring_, added_);
    added_ = 0;
  }

 private:
  io_uring_buf_ring* ring_ = nullptr;
  char* data_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::size_t data_bytes_ = 0;
  unsigned count_ = 0;
  unsigned size_ = 0;
  unsigned held_ = 0;  // buffers out of the ring while a send uses them
  int added_ = 0;      // given back since the last publish()
};

// Bytes of one connection received but not yet echoed, in order: a ring of at most the
// high-water mark (the recvs are given no more than the room below it), allocated at most twice
// per backlog, as ConnectionBuffer's is: first as large as the first bytes queued, then, if
// those fill it, exactly the high-water mark. A send from the ring may be in flight when it
// grows; the memory that send reads is kept until it completes (pin/unpin). Empty, it holds no
// memory, so an idle connection costs none.
class Backlog {
 public:
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  // Appends a copy of [data, data + size); false, and nothing appended, if the backlog would
  // then hold more than `high_water` bytes.
  [[nodiscard]] bool push(const char* data, std::size_t size, std::size_t high_water) {
    if (size > high_water || size_ > high_water - size) return false;
    const std::size_t needed = size_ + size;
    if (needed > capacity_) grow(capacity_ == 0 ? needed : high_water);
    const std::size_t tail = (head_ + size_) % capacity_;
    const std::size_t first = std::min(size, capacity_ - tail);
    std::memcpy(ring_.get() + tail, data, first);
    std::memcpy(ring_.get(), data + first, size - first);
    size_ = static_cast<std::uint32_t>(needed);
    return true;
  }
  // The oldest bytes up to the end of the ring: what the next send takes.
  [[nodiscard]] std::span<const char> front() const noexcept {
    return {ring_.get() + head_, std::min<std::size_t>(size_, capacity_ - head_)};
  }
  void pop(std::size_t size) noexcept {
    head_ = static_cast<std::uint32_t>((head_ + size) % capacity_);
    size_ -= static_cast<std::uint32_t>(size);
    if (size_ == 0) head_ = 0;
  }
  // A send from front() is in flight: its memory must outlive a grow until unpin().
  void pin() noexcept { pinned_ = true; }
  void unpin() noexcept {
    pinned_ = false;
    retired_.reset();
  }
  [[nodiscard]] bool pinned() const noexcept { return pinned_; }
  // Gives the memory back once nothing is queued and no send reads it.
  void release() noexcept {
    if (size_ != 0 || pinned_) return;
    ring_.reset();
    capacity_ = head_ = 0;
  }
  void append_to(std::vector<char>& out) const {
    const auto first = front();
    out.insert(out.end(), first.begin(), first.end());
    out.insert(out.end(), ring_.get(), ring_.get() + (size_ - first.size()));
  }

 private:
  void grow(std::size_t capacity) {
    // for_overwrite: pages of a large ring stay untouched (and out of RSS) until bytes land there.
    auto ring = std::make_unique_for_overwrite<char[]>(capacity);
    if (size_ > 0) {
      const auto first = front();
      std::memcpy(ring.get(), first.data(), first.size());
      std::memcpy(ring.get() + first.size(), ring_.get(), size_ - first.size());
    }
    if (pinned_) retired_ = std::move(ring_);  // a send still reads it
    ring_ = std::move(ring);
    capacity_ = static_cast<std::uint32_t>(capacity);
    head_ = 0;
  }

  std::unique_ptr<char[]> ring_;     // capacity_ bytes; null while empty
  std::unique_ptr<char[]> retired_;  // the memory before the last grow, while a send reads it
  std::uint32_t capacity_ = 0;       // the high-water mark is at most 1 GiB
  std::uint32_t head_ = 0;           // index of the oldest byte
  std::uint32_t size_ = 0;
  bool pinned_ = false;
};

// One client: its socket and place under the caps, what its requests in flight are, and the
// bytes received but not yet echoed: the held buffer's (a send from it in flight), then the
// backlog's. Owned by the loop; its address is the user_data of its requests, so it lives until
// none is left.
struct alignas(8) Connection : IdleList::Hook {
  explicit Connection(Accepted accepted) noexcept
      : socket(std::move(accepted.socket)), admission(std::move(accepted.admission)) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() = default;

  [[nodiscard]] int fd() const noexcept { return socket.get(); }
  [[nodiscard]] bool busy() const noexcept { return recv_armed || sending; }
  [[nodiscard]] std::size_t pending() const noexcept { return held_left + backlog.size(); }
  // What the client is still owed, in order, for a lingering close.
  [[nodiscard]] std::vector<char> unsent() const {
    std::vector<char> bytes(held_data, held_data + held_left);
    backlog.append_to(bytes);
    return bytes;
  }

  Fd socket;
  Admission admission;
  Backlog backlog;
  const char* held_data = nullptr;  // the held buffer's unsent bytes
  std::uint32_t held_left = 0;
  int held_buffer = -1;  // provided buffer a send is from
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  bool recv_armed = false;
  bool sending = false;    // from the held buffer if there is one, else from the backlog
  bool peer_done = false;  // the client shut down its sending side
  bool closing = false;    // closes once nothing is in flight
  bool starved = false;    // its recv ended with ENOBUFS: re-armed once buffers are back
  bool fixed = false;      // in the ring's file table, at index fd()
};

class UringModel final : public IServerModel {
 public:
  static void declare_options(po::options_description& options) {
    const Options defaults;
    auto flag = [](bool value) {
      return po::value<bool>()->default_value(value, value ? "true" : "false");
    };
    // clang-format off
    options.add_options()
        ("uring.queue-depth", bounded(8, 32768)->default_value(defaults.queue_depth),
         "submission queue entries (8-32768); the completion queue is sized for max-connections")
        ("uring.buffers", bounded(2, 32768)->default_value(defaults.buffers),
         "provided receive buffers shared by all connections, a power of two (2-32768)")
        ("uring.buffer-size", bounded(64, 1 << 20)->default_value(defaults.buffer_size),
         "bytes per receive buffer (64-1048576)")
        ("uring.batch", bounded(1, 4096)->default_value(defaults.batch),
         "completions each wait asks for, at most (1-4096); it asks for no more than the last "
         "wait brought")
        ("uring.min-wait-us", bounded(0, 100000)->default_value(defaults.min_wait_us),
         "microseconds a wait holds out for a whole batch once one completion is in; 0: off "
         "(needs kernel 6.12, IORING_FEAT_MIN_TIMEOUT)")
        ("uring.defer-taskrun", flag(defaults.defer_taskrun),
         "IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN: completions run only inside the loop's wait")
        ("uring.register-ring", flag(defaults.register_ring),
         "register the ring descriptor (io_uring_register_ring_fd)")
        ("uring.fixed-files", flag(defaults.fixed_files),
         "register each socket in the ring's file table (direct descriptors)")
        ("uring.multishot", flag(defaults.multishot),
         "one multishot recv per connection while nothing is queued for it, capped below the "
         "high-water mark (needs kernel 6.17; else, or false, a single-shot recv per message)");
    // clang-format on
  }

  explicit UringModel(const po::variables_map& settings)
      : options_{
            settings["uring.queue-depth"].as<int>(),    settings["uring.buffers"].as<int>(),
            settings["uring.buffer-size"].as<int>(),    settings["uring.batch"].as<int>(),
            settings["uring.min-wait-us"].as<int>(),    settings["uring.defer-taskrun"].as<bool>(),
            settings["uring.register-ring"].as<bool>(), settings["uring.fixed-files"].as<bool>(),
            settings["uring.multishot"].as<bool>()} {
    if (!std::has_single_bit(static_cast<unsigned>(options_.buffers))) {
      throw std::invalid_argument("uring.buffers must be a power of two");
    }
  }

  ~UringModel() override {
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  // Empty when this kernel lets us make a ring with provided buffers; else why not.
  static std::string unavailable_reason() {
    io_uring ring{};
    io_uring_params params{};
    const int error = io_uring_queue_init_params(4, &ring, &params);
    if (error < 0) {
      return std::string("io_uring_setup failed: ") + std::strerror(-error) +
             " (kernel.io_uring_disabled, a seccomp filter or a kernel without io_uring)";
    }
    std::string reason;
    if ((params.features & IORING_FEAT_FAST_POLL) == 0 ||
        (params.features & IORING_FEAT_EXT_ARG) == 0) {
      reason = "io_uring lacks FEAT_FAST_POLL or FEAT_EXT_ARG (kernel older than 5.11)";
    } else {
      BufferPool probe_pool;
      if (const int pool_error = probe_pool.setup(ring, 2, 64); pool_error != 0) {
        reason = std::string("io_uring_register_buf_ring failed: ") + std::strerror(pool_error) +
                 " (kernel older than 5.19)";
      }
    }
    io_uring_queue_exit(&ring);
    return reason;
  }

  int run(const ServerContext& ctx) noexcept override {
    try {
      return serve(ctx);
    } catch (const std::system_error& e) {  // io_uring_enter failed while submitting
      ctx.log->error("uring: {}", e.what());
      return e.code().value();
    } catch (const std::exception& e) {  // allocation failure outside a connection: give up
      ctx.log->error("uring: {}", e.what());
      return ENOMEM;
    }
  }

 private:
  int serve(const ServerContext& ctx) {
    high_water_ = ctx.high_water;
    endpoint_ = ctx.endpoint;
    if (const int error = open_ring(ctx); error != 0) return error;
    arm_poll(ctx.stop_fd, kStop);
    arm_poll(ctx.drain_fd, kDrain);
    for (int fd : ctx.listen_fds) {
      acceptors_.push_back(std::make_unique<Acceptor>(fd, ctx));
      arm_listener(acceptors_.size() - 1);
    }
    IdleList idle(ctx.endpoint->limits().idle_timeout);

    bool draining = false;
    bool muted = false;  // the listeners' polls stay unarmed until resume_accepting
    Clock::time_point resume_accepting;
    for (;;) {
      if (draining && open_ == 0) return 0;
      auto now = Clock::now();
      if (muted && now >= resume_accepting) {
        for (std::size_t i = 0; i < acceptors_.size(); ++i)
          arm_listener(i);
        muted = false;
      }
      int timeout_ms = idle.wait_ms(now);
      if (muted) {
        const auto pause = std::chrono::ceil<std::chrono::milliseconds>(resume_accepting - now);
        timeout_ms = earliest_timeout(timeout_ms, static_cast<int>(pause.count()));
      }
      if (const int error = submit_and_wait(timeout_ms); error != 0) {
        return log_call_failure(*ctx.log, "io_uring_enter", error);
      }
      now = Clock::now();
      bool stop = false;
      last_batch_ = reap();
      // By index: a full submission queue reaps more completions onto the end (next_sqe).
      for (std::size_t i = 0; i < completions_.size(); ++i) {
        const Completion done = completions_[i];
        const __u64 data = done.user_data;
        if (data == kStop) {
          stop = true;
        } else if (data == kDrain) {
          draining = true;
          cancel_listeners();
        } else if (data < kListener) {  // kIgnore, or a late kProbe
          continue;
        } else if (data >= kListener && data < kListener + acceptors_.size()) {
          Acceptor& acceptor = *acceptors_[data - kListener];
          listener_armed_[data - kListener] = false;
          if (draining) continue;
          if (!accept_ready(acceptor, ctx, idle, now)) {
            if (acceptor.closed()) {
              draining = true;
              cancel_listeners();
            } else {
              muted = true;
              resume_accepting = now + std::chrono::milliseconds(kAcceptBackoffMs);
            }
          } else {
            arm_listener(data - kListener);
          }
        } else {
          auto* c = reinterpret_cast<Connection*>(data & ~kTagMask);
          if ((data & kTagMask) == kRecv) {
            on_received(*c, done.result, done.flags, ctx, idle, now);
          } else {
            on_sent(*c, done.result, ctx);
          }
          if (c->closing && !c->busy()) drop(*c);
        }
      }
      completions_.clear();
      pool_.publish();
      rearm_starved();
      if (stop) return stop_all(ctx);
      idle.expire(now, [&](IdleList::Hook& hook) {
        auto& c = static_cast<Connection&>(hook);
        if (c.closing) return true;
        if (c.pending() > 0) return false;  // still echoing: not idle
        ctx.log->debug("fd {}: closed after {} s idle", c.fd(),
                       std::chrono::duration<double>(idle.timeout()).count());
        ctx.endpoint->count_idle_close();
        close_connection(c);
        if (!c.busy()) drop(c);
        return true;
      });
    }
  }

  // The ring: completions reaped only inside our own wait (DEFER_TASKRUN) where the kernel
  // allows it, a completion queue with room for every connection's completions, the receive
  // buffer pool.
  int open_ring(const ServerContext& ctx) {
    const std::size_t connections = ctx.endpoint->limits().max_connections;
    const unsigned cq_entries = std::bit_ceil(static_cast<unsigned>(std::clamp<std::size_t>(
        2 * connections + 64, 2 * static_cast<std::size_t>(options_.queue_depth), 65536)));
    const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
    std::vector<unsigned> attempts;
    if (options_.defer_taskrun) {
      attempts.push_back(base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    }
    attempts.push_back(base | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
    attempts.push_back(base);
    int error = 0;
    for (unsigned flags : attempts) {
      io_uring_params params{};
      params.flags = flags;
      params.cq_entries = cq_entries;
      error =
          io_uring_queue_init_params(static_cast<unsigned>(options_.queue_depth), &ring_, &params);
      if (error == 0) {
        ring_ready_ = true;
        features_ = params.features;
        completions_.reserve(params.cq_entries);
        ctx.log->debug("io_uring: flags {:#x}, {} SQ / {} CQ entries, features {:#x}", flags,
                       params.sq_entries, params.cq_entries, params.features);
        break;
      }
      if (error != -EINVAL) break;  // only an unknown flag is worth another try
    }
    if (error != 0) return log_call_failure(*ctx.log, "io_uring_queue_init_params", -error);
    if (options_.min_wait_us > 0 && (features_ & IORING_FEAT_MIN_TIMEOUT) == 0) {
      ctx.log->warn("uring.min-wait-us needs IORING_FEAT_MIN_TIMEOUT (kernel 6.12); ignored");
      options_.min_wait_us = 0;
    }
    if (options_.register_ring && io_uring_register_ring_fd(&ring_) == 1) {
      enter_fd_ = ring_.enter_ring_fd;
      enter_flags_ = IORING_ENTER_REGISTERED_RING;
    } else {
      enter_fd_ = ring_.ring_fd;
    }
    if (options_.fixed_files) {
      // Indexed by descriptor, so the table needs a slot for every descriptor we may hold.
      rlimit limit{};
      ::getrlimit(RLIMIT_NOFILE, &limit);
      const auto slots = static_cast<unsigned>(std::min<rlim_t>(limit.rlim_cur, 1u << 20));
      if (io_uring_register_files_sparse(&ring_, slots) == 0) {
        file_slots_ = slots;
      } else {
        ctx.log->debug("io_uring: no file table; using plain descriptors");
      }
    }
    if (const int pool_error = pool_.setup(ring_, static_cast<unsigned>(options_.buffers),
                                           static_cast<unsigned>(options_.buffer_size));
        pool_error != 0) {
      return log_call_failure(*ctx.log, "io_uring_register_buf_ring", pool_error);
    }
    if (options_.multishot) {
      multishot_ = kernel_caps_multishot();
      if (multishot_) {
        ctx.log->debug("io_uring: multishot recv, its total capped below the high-water mark");
      } else {
        ctx.log->info(
            "io_uring: this kernel cannot cap a multishot recv's bytes (kernel 6.17); "
            "a single-shot recv per message instead");
      }
    }
    return 0;
  }

  // Whether a multishot recv given a total cap of 1 byte ends after its first completion. A
  // kernel that does not know the cap refuses the request (EINVAL) or ignores the field (the
  // recv stays armed: cancelled here). Without the cap a multishot recv may drain a whole socket
  // buffer past the high-water mark before the loop could stop it, so it is not used.
  bool kernel_caps_multishot() {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
      return false;
    }
    const Fd ours(pair[0]);
    const Fd theirs(pair[1]);
    if (::send(theirs.get(), "ab", 2, MSG_NOSIGNAL) != 2) return false;
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_recv_multishot(sqe, ours.get(), nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    set_multishot_total_cap(*sqe, 1);
    io_uring_sqe_set_data64(sqe, kProbe);
    bool capped = false;
    bool armed = true;
    for (int round = 0; armed && round < 8; ++round) {
      if (const int error = wait_for(1, 0, 100); error != 0) break;
      reap();
      for (const Completion& done : completions_) {
        if (done.user_data != kProbe) continue;
        if ((done.flags & IORING_CQE_F_BUFFER) != 0) {
          pool_.give_back(static_cast<unsigned short>(done.flags >> IORING_CQE_BUFFER_SHIFT));
        }
        const bool more = (done.flags & IORING_CQE_F_MORE) != 0;
        if (done.result > 0 && !more && armed) capped = true;
        if (more && armed) {  // the cap was ignored
          capped = false;
          cancel(kProbe);
        }
        armed = armed && more;
      }
      completions_.clear();
    }
    pool_.publish();
    return capped && !armed;
  }

  // Takes the pending connections (a bounded batch per wakeup), each starting with a recv.
  // False: pause accepting.
  bool accept_ready(Acceptor& acceptor, const ServerContext& ctx, IdleList& idle,
                    Clock::time_point now) {
    return acceptor.accept_batch(kAcceptBatch, [&](Accepted accepted) {
      const int fd = accepted.fd();
      try {
        if (static_cast<std::size_t>(fd) >= connections_.size()) {
          connections_.resize(static_cast<std::size_t>(fd) + 1);
        }
        auto connection = std::make_unique<Connection>(std::move(accepted));
        ctx.log->debug("fd {}: accepted", fd);
        idle.touch(*connection, now);
        if (static_cast<unsigned>(fd) < file_slots_) {
          connection->fixed =
              io_uring_register_files_update(&ring_, static_cast<unsigned>(fd), &fd, 1) == 1;
        }
        maybe_arm_recv(*connection);
        connections_[static_cast<std::size_t>(fd)] = std::move(connection);
        ++open_;
      } catch (const std::bad_alloc&) {  // this connection closes; the others go on
        ctx.log->warn("out of memory: closing the new connection on fd {}", fd);
      }
    });
  }

  // Bytes arrived in a provided buffer: send them from there if nothing is ahead of them, else
  // queue a copy behind the send in flight. The recv was given at most the room below the
  // high-water mark, so the copy fits; once the mark is reached no recv is armed (backpressure)
  // until sends make room.
  void on_received(Connection& c, int result, unsigned flags, const ServerContext& ctx,
                   IdleList& idle, Clock::time_point now) {
    if ((flags & IORING_CQE_F_MORE) == 0) c.recv_armed = false;
    const bool has_buffer = (flags & IORING_CQE_F_BUFFER) != 0;
    const auto buffer = static_cast<unsigned short>(flags >> IORING_CQE_BUFFER_SHIFT);
    if (result > 0 && !has_buffer) {  // cannot happen with IOSQE_BUFFER_SELECT
      ctx.log->warn("fd {}: recv completed without a buffer; closing it", c.fd());
      close_connection(c);
      return;
    }
    if (result > 0) {
      const auto size = static_cast<std::size_t>(result);
      c.bytes_in += size;
      idle.touch(c, now);
      if (c.closing) {
        pool_.give_back(buffer);
      } else if (!c.sending && c.backlog.empty() && pool_.may_hold() && !stopping_) {
        pool_.hold();
        c.held_buffer = buffer;
        c.held_data = pool_.data(buffer);
        c.held_left = static_cast<std::uint32_t>(size);
        submit_send(c, c.held_data, size);
      } else {
        const bool queued = size <= high_water_ - c.pending() &&
                            c.backlog.push(pool_.data(buffer), size, high_water_);
        pool_.give_back(buffer);
        if (!queued) {  // a recv larger than its room: a bug, never a reason to grow
          ctx.log->warn("fd {}: {} bytes received past the high-water mark; closing it", c.fd(),
                        size);
          close_connection(c);
          return;
        }
        if (!c.sending && !stopping_) send_backlog(c);
      }
    } else {
      if (has_buffer) pool_.give_back(buffer);
      if (result == 0) {
        c.peer_done = true;
        if (!c.sending) close_connection(c);  // all echoed
      } else if (result == -ENOBUFS) {
        if (!c.closing && !c.starved) {
          c.starved = true;
          starved_.push_back(c.fd());
        }
      } else if (result != -ECANCELED) {
        peer_failed(c, "recv", -result, ctx);
      }
    }
    if (!c.starved) maybe_arm_recv(c);
  }

  // One send in flight per connection: finish a short one, then the backlog, in order.
  void on_sent(Connection& c, int result, const ServerContext& ctx) {
    c.sending = false;
    if (c.held_buffer < 0) c.backlog.unpin();
    if (result < 0) {
      if (result != -ECANCELED) peer_failed(c, "send", -result, ctx);
      return;  // closing drops the connection; at a stop the unsent bytes go to the Finisher
    }
    sent(c, static_cast<std::size_t>(result));
    if (c.closing || stopping_) return;
    if (c.held_buffer >= 0) {
      if (c.held_left > 0) {
        submit_send(c, c.held_data, c.held_left);
        return;
      }
      pool_.release_held(static_cast<unsigned short>(c.held_buffer));
      c.held_buffer = -1;
    }
    if (!c.backlog.empty()) {
      send_backlog(c);
    } else {
      c.backlog.release();  // caught up: an idle connection holds no memory
      if (c.peer_done) {
        close_connection(c);
        return;
      }
    }
    maybe_arm_recv(c);
  }
  // Counts bytes the send in flight moved.
  void sent(Connection& c, std::size_t bytes) noexcept {
    c.bytes_out += bytes;
    if (c.held_buffer >= 0) {
      c.held_data += bytes;
      c.held_left -= static_cast<std::uint32_t>(bytes);
    } else {
      c.backlog.pop(bytes);
    }
  }

  void send_backlog(Connection& c) {
    const auto bytes = c.backlog.front();
    c.backlog.pin();
    submit_send(c, bytes.data(), bytes.size());
  }
  void submit_send(Connection& c, const char* data, std::size_t size) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_send(sqe, c.fd(), data, size, MSG_NOSIGNAL);
    if (c.fixed) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, reinterpret_cast<__u64>(&c) | kSend);
    c.sending = true;
  }

  // Arms a recv of at most the room left below the high-water mark, none at the mark. While
  // nothing is queued, a multishot recv whose total the kernel caps so that even a last buffer
  // filled whole stays within the room; while bytes are queued (the client reads slower than it
  // sends), a single-shot recv of at most the room.
  void maybe_arm_recv(Connection& c) {
    if (c.recv_armed || c.peer_done || c.closing || stopping_) return;
    const std::size_t pending = c.pending();
    if (pending >= high_water_) return;  // backpressure: armed again once sends make room
    const std::size_t room = high_water_ - pending;
    const std::size_t buffer_size = pool_.buffer_size();
    io_uring_sqe* sqe = next_sqe();
    if (multishot_ && c.backlog.empty() && room >= buffer_size) {
      io_uring_prep_recv_multishot(sqe, c.fd(), nullptr, 0, 0);
      const std::size_t cap = room - buffer_size + 1;
      set_multishot_total_cap(
          *sqe, static_cast<__u32>(std::min<std::size_t>(cap, std::numeric_limits<__u32>::max())));
    } else {
      io_uring_prep_recv(sqe, c.fd(), nullptr, std::min(room, buffer_size), 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT | (c.fixed ? IOSQE_FIXED_FILE : 0);
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, reinterpret_cast<__u64>(&c) | kRecv);
    c.recv_armed = true;
  }
  // Connections whose recv found the pool empty, now that buffers are back.
  void rearm_starved() {
    if (starved_.empty()) return;
    std::vector<int> waiting;
    waiting.swap(starved_);
    for (int fd : waiting) {
      Connection* c = connections_[static_cast<std::size_t>(fd)].get();
      if (c == nullptr) continue;
      c->starved = false;
      maybe_arm_recv(*c);
      if (c->closing && !c->busy()) drop(*c);
    }
  }

  void peer_failed(Connection& c, const char* call, int error, const ServerContext& ctx) {
    if (classify_errno(error) == ErrnoClass::kPeerGone) {
      ctx.log->debug("fd {}: {}: {}", c.fd(), call, std::strerror(error));
    } else {
      ctx.log->warn("fd {}: {}: {} ({})", c.fd(), call, std::strerror(error), errno_name(error));
    }
    c.admission.mark_failed();  // counted as an error when its place is released
    close_connection(c);
  }

  // close() does not cancel what is in flight on a socket: cancel by descriptor first; the
  // socket closes once its last completion is in (drop).
  void close_connection(Connection& c) {
    if (c.closing) return;
    c.closing = true;
    if (c.busy()) {
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_cancel_fd(
          sqe, c.fd(), IORING_ASYNC_CANCEL_ALL | (c.fixed ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
      io_uring_sqe_set_data64(sqe, kIgnore);
    }
  }
  // The file table holds its own reference to the socket: empty the slot, or close() would
  // not close it.
  void drop(Connection& c) {
    const auto fd = static_cast<std::size_t>(c.fd());
    if (c.fixed) {
      int none = -1;
      io_uring_register_files_update(&ring_, static_cast<unsigned>(fd), &none, 1);
    }
    retire(connections_[fd]);
    --open_;
  }

  // Closes the socket, releases its place under the caps and its held buffer, counts its bytes.
  void retire(std::unique_ptr<Connection>& slot) {
    if (slot->held_buffer >= 0) pool_.release_held(static_cast<unsigned short>(slot->held_buffer));
    endpoint_->count_bytes(slot->bytes_in, slot->bytes_out);
    slot.reset();
  }

  // At stop_fd: cancel every request, let their completions in, then hand each socket and
  // the bytes it is owed to a Finisher.
  int stop_all(const ServerContext& ctx) {
    stopping_ = true;
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, kIgnore);
    const auto deadline = Clock::now() + std::chrono::seconds(1);
    const auto busy = [&] {
      return std::any_of(connections_.begin(), connections_.end(),
                         [](const auto& c) { return c && c->busy(); });
    };
    while (busy() && Clock::now() < deadline) {
      if (submit_and_wait(100) != 0) break;
      reap();
      for (const Completion& done : completions_) {
        const __u64 data = done.user_data;
        if (data < kListener + acceptors_.size()) continue;
        auto* c = reinterpret_cast<Connection*>(data & ~kTagMask);
        if ((data & kTagMask) == kRecv) {
          c->recv_armed = (done.flags & IORING_CQE_F_MORE) != 0;
          if (done.flags & IORING_CQE_F_BUFFER) {
            const auto buffer = static_cast<unsigned short>(done.flags >> IORING_CQE_BUFFER_SHIFT);
            const auto size = static_cast<std::size_t>(std::max(done.result, 0));
            // Still owed to the client; it fits, as every recv's room did.
            if (size > 0 && !c->closing && size <= high_water_ - c->pending() &&
                c->backlog.push(pool_.data(buffer), size, high_water_)) {
              c->bytes_in += size;
            }
            pool_.give_back(buffer);
          }
        } else {
          c->sending = false;
          if (done.result > 0) sent(*c, static_cast<std::size_t>(done.result));
          if (c->held_buffer < 0) c->backlog.unpin();
        }
      }
      completions_.clear();
      pool_.publish();
    }
    if (busy()) ctx.log->warn("io_uring: requests still in flight at the stop");
    if (file_slots_ > 0) io_uring_unregister_files(&ring_);  // the Finisher's close must close
    Finisher finisher(*ctx.endpoint);
    for (auto& c : connections_) {
      if (!c) continue;
      if (!c->closing && !c->busy()) {
        const std::vector<char> owed = c->unsent();
        finisher.add(std::move(c->socket), owed);
        c->admission.release();
      }
    }
    finisher.run();
    for (auto& c : connections_) {
      if (c && !c->busy()) retire(c);
    }
    return 0;
  }

  void arm_poll(int fd, __u64 data) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_poll_add(sqe, fd, POLLIN);
    io_uring_sqe_set_data64(sqe, data);
  }
  // Accepting goes through Acceptor (caps, errno policy, the EMFILE spare descriptor) as in
  // epoll; the ring only says when the listener is readable.
  void arm_listener(std::size_t index) {
    if (listener_armed_.size() <= index) listener_armed_.resize(index + 1, false);
    if (listener_armed_[index] || acceptors_[index]->closed()) return;
    arm_poll(acceptors_[index]->listen_fd(), kListener + index);
    listener_armed_[index] = true;
  }
  void cancel_listeners() {
    for (std::size_t i = 0; i < listener_armed_.size(); ++i) {
      if (!listener_armed_[i]) continue;
      io_uring_sqe* sqe = next_sqe();
      io_uring_prep_poll_remove(sqe, kListener + i);
      io_uring_sqe_set_data64(sqe, kIgnore);
    }
  }
  void cancel(__u64 data) {
    io_uring_sqe* sqe = next_sqe();
    io_uring_prep_cancel64(sqe, data, 0);
    io_uring_sqe_set_data64(sqe, kIgnore);
  }

  // A free submission entry. When the queue is full: submit it, letting the kernel run the
  // deferred completions, and reap what completed onto completions_ (the loop handles those after
  // the ones before them), so a full completion queue (-EBUSY) is emptied instead of retried.
  io_uring_sqe* next_sqe() {
    for (;;) {
      if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_); sqe != nullptr) return sqe;
      const int result = enter(flush_sq(), 0, IORING_ENTER_GETEVENTS, nullptr);
      const unsigned reaped = reap();
      if (result < 0 && result != -EBUSY && result != -EINTR && result != -EAGAIN) {
        throw std::system_error(-result, std::generic_category(), "io_uring_enter");
      }
      if (result <= 0 && reaped == 0) {
        // Nothing went in and nothing came out: give the kernel a moment (at most 10 ms) to
        // complete something, rather than spin.
        if (const int error = wait_for(1, 0, 10); error != 0) {
          throw std::system_error(error, std::generic_category(), "io_uring_enter");
        }
        reap();
      }
    }
  }

  // Copies every completion in the ring to completions_ and hands the slots back; how many.
  unsigned reap() {
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      completions_.push_back({cqe->user_data, cqe->res, cqe->flags});
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    return seen;
  }

  // Makes the queued entries visible to the kernel (liburing's __io_uring_flush_sq, which
  // 2.3 does not export); returns how many are to be submitted.
  unsigned flush_sq() noexcept {
    io_uring_sq& sq = ring_.sq;
    if (sq.sqe_head != sq.sqe_tail) {
      sq.sqe_head = sq.sqe_tail;
      io_uring_smp_store_release(sq.ktail, sq.sqe_tail);
    }
    return sq.sqe_tail - *sq.khead;
  }

  // One io_uring_enter per loop iteration: submits, runs the deferred completions, and waits
  // for up to a batch of them (never more than the last wait brought or the open connections,
  // so that clients are not held up for completions that will not come), giving up after
  // min-wait once one is in, or at timeout_ms (-1: none).
  int submit_and_wait(int timeout_ms) {
    unsigned wait_nr = static_cast<unsigned>(std::clamp<std::size_t>(
        std::min<std::size_t>(open_, last_batch_), 1, static_cast<std::size_t>(options_.batch)));
    if (io_uring_cq_ready(&ring_) > 0 || !completions_.empty()) wait_nr = 0;
    return wait_for(wait_nr, wait_nr > 1 ? static_cast<unsigned>(options_.min_wait_us) : 0,
                    timeout_ms);
  }
  // Submits what is queued and waits for wait_nr completions, min_wait_us once one is in, or
  // timeout_ms (-1: none); 0, or an errno value for a failure that is not transient.
  int wait_for(unsigned wait_nr, unsigned min_wait_us, int timeout_ms) {
    __kernel_timespec timeout{};
    GeteventsArg arg{};
    arg.sigmask_sz = _NSIG / 8;
    arg.min_wait_usec = min_wait_us;
    if (timeout_ms >= 0) {
      timeout.tv_sec = timeout_ms / 1000;
      timeout.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
      arg.ts = reinterpret_cast<__u64>(&timeout);
    }
    const int result =
        enter(flush_sq(), wait_nr, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg);
    if (result >= 0 || result == -ETIME || result == -EINTR || result == -EBUSY ||
        result == -EAGAIN) {
      return 0;
    }
    return -result;
  }
  int enter(unsigned to_submit, unsigned wait_nr, unsigned flags, GeteventsArg* arg) noexcept {
    const long result = ::syscall(__NR_io_uring_enter, enter_fd_, to_submit, wait_nr,
                                  flags | enter_flags_, arg, arg ? sizeof *arg : 0);
    return result < 0 ? -errno : static_cast<int>(result);
  }

  Options options_;
  io_uring ring_{};
  bool ring_ready_ = false;
  bool multishot_ = false;  // options_.multishot, and this kernel caps a multishot recv
  unsigned features_ = 0;
  int enter_fd_ = -1;
  unsigned enter_flags_ = 0;
  unsigned file_slots_ = 0;  // size of the ring's file table (0: none)
  BufferPool pool_;  // after ring_: unmapped first (the ring is gone by then: see ~UringModel)
  std::size_t high_water_ = 0;
  Endpoint* endpoint_ = nullptr;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::vector<bool> listener_armed_;
  std::vector<std::unique_ptr<Connection>> connections_;  // indexed by descriptor
  std::size_t open_ = 0;                                  // non-null entries of connections_
  std::vector<Completion> completions_;                   // reaped, not yet handled
  std::vector<int> starved_;  // descriptors whose recv ended with ENOBUFS
  bool stopping_ = false;     // at stop_fd: no new requests
  // Completions the last wait brought: what a closed-loop client has in flight, so the next
  // wait asks for about as many and no more (a lone client is answered at once).
  std::size_t last_batch_ = 1;
};

}  // namespace

ECHOD_PLUGIN(UringModel, "uring",
             "one thread, io_uring completions: a bounded recv into provided buffers, send "
             "from them (DEFER_TASKRUN)",
             echod::kCapConcurrent | echod::kCapEventDriven)
