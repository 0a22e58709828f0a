#include "echod/endpoint.hpp"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <new>
#include <system_error>

#include <fmt/format.h>

namespace echod {
namespace {

constexpr std::uint32_t kNoAddress = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint32_t kNoSlot = std::numeric_limits<std::uint32_t>::max();
constexpr auto kWarningInterval = std::chrono::seconds(1);

in6_addr as_v6(const sockaddr_storage& peer) noexcept {
  in6_addr address{};
  if (peer.ss_family == AF_INET6) return reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr;
  if (peer.ss_family == AF_INET) {  // ::ffff:a.b.c.d
    address.s6_addr[10] = 0xff;
    address.s6_addr[11] = 0xff;
    std::memcpy(&address.s6_addr[12], &reinterpret_cast<const sockaddr_in&>(peer).sin_addr, 4);
  }
  return address;
}

std::string format_v6(const in6_addr& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (IN6_IS_ADDR_V4MAPPED(&address)) {
    ::inet_ntop(AF_INET, &address.s6_addr[12], text, sizeof text);
  } else {
    ::inet_ntop(AF_INET6, &address, text, sizeof text);
  }
  return text;
}

std::uint64_t hash_address(const in6_addr& address) noexcept {
  std::uint64_t words[2];
  std::memcpy(words, &address, sizeof words);
  std::uint64_t h = words[0] * 0x9E3779B97F4A7C15ull ^ (words[1] + 0x632BE59BD9B4E019ull);
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 32);
}

std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void set_int_option(int fd, int level, int name, int value) noexcept {
  ::setsockopt(fd, level, name, &value, sizeof value);
}

}  // namespace

bool AddressRange::parse(const std::string& text, AddressRange& range) {
  const auto slash = text.find('/');
  const std::string host = text.substr(0, slash);
  AddressRange parsed;
  in_addr v4{};
  int max_bits = 128;
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    parsed.prefix.s6_addr[10] = 0xff;
    parsed.prefix.s6_addr[11] = 0xff;
    std::memcpy(&parsed.prefix.s6_addr[12], &v4, 4);
    max_bits = 32;
  } else if (::inet_pton(AF_INET6, host.c_str(), &parsed.prefix) != 1) {
    return false;
  }
  int bits = max_bits;
  if (slash != std::string::npos) {
    const std::string digits = text.substr(slash + 1);
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() ||
        bits < 0 || bits > max_bits) {
      return false;
    }
  }
  parsed.bits = bits + (128 - max_bits);
  range = parsed;
  return true;
}

bool AddressRange::contains(const in6_addr& address) const noexcept {
  int left = bits;
  for (int i = 0; i < 16 && left > 0; ++i, left -= 8) {
    const int take = std::min(left, 8);
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - take));
    if ((address.s6_addr[i] & mask) != (prefix.s6_addr[i] & mask)) return false;
  }
  return true;
}

// In the shared mapping: plain data and lock-free atomics only, valid in every process.
struct Endpoint::Shared {
  struct Slot {
    pid_t owner;            // 0: free
    std::uint32_t address;  // index into addresses, or kNoAddress when not counted per address
    std::uint32_t next_free;
  };
  struct AddressEntry {
    in6_addr address;
    std::uint32_t count;
    std::uint32_t state;  // kEmpty, kUsed, kDeleted
  };
  enum : std::uint32_t { kEmpty = 0, kUsed = 1, kDeleted = 2 };

  pthread_mutex_t mutex;  // process-shared and robust: a SIGKILLed holder cannot wedge the rest
  std::atomic<int> phase;
  std::atomic<std::uint32_t> open_mirror;  // `open`, for readers that cannot take the mutex
  std::atomic<std::uint64_t> accepted, refused_max_connections, refused_per_ip, shed_emfile,
      closed_idle, drained, errors, bytes_in, bytes_out;
  std::atomic<std::int64_t> last_cap_warning_ns, last_address_warning_ns;
  // Guarded by mutex:
  std::uint32_t open;
  std::uint32_t free_head;  // slots freed since: a list through next_free
  std::uint32_t untouched;  // slots from here on were never used (still zero-filled)
  std::uint32_t slot_count;
  std::uint32_t address_capacity;  // a power of two, or 0 without a per-address cap
  // Slot slots[slot_count]; AddressEntry addresses[address_capacity]; follow.

  Slot* slots() noexcept { return reinterpret_cast<Slot*>(this + 1); }
  AddressEntry* addresses() noexcept {
    return reinterpret_cast<AddressEntry*>(slots() + slot_count);
  }

  // The entry counting `address`, created if absent; kNoAddress if the table is full.
  std::uint32_t find_or_add(const in6_addr& address) noexcept {
    const std::uint32_t mask = address_capacity - 1;
    std::uint32_t reusable = kNoAddress;
    for (std::uint32_t i = hash_address(address) & mask, probes = 0; probes < address_capacity;
         i = (i + 1) & mask, ++probes) {
      AddressEntry& entry = addresses()[i];
      if (entry.state == kEmpty) {
        const std::uint32_t use = reusable != kNoAddress ? reusable : i;
        addresses()[use] = {address, 0, kUsed};
        return use;
      }
      if (entry.state == kDeleted) {
        if (reusable == kNoAddress) reusable = i;
      } else if (std::memcmp(&entry.address, &address, sizeof address) == 0) {
        return i;
      }
    }
    if (reusable != kNoAddress) addresses()[reusable] = {address, 0, kUsed};
    return reusable;
  }

  // Drops an entry whose count reached 0, turning trailing tombstones back into empty slots so
  // that probe chains stay short however many addresses come and go.
  void remove(std::uint32_t index) noexcept {
    const std::uint32_t mask = address_capacity - 1;
    addresses()[index].state = kDeleted;
    if (addresses()[(index + 1) & mask].state != kEmpty) return;
    for (std::uint32_t i = index; addresses()[i].state == kDeleted; i = (i - 1) & mask)
      addresses()[i].state = kEmpty;
  }

  // Called with mutex held. An error is counted here, inside the locked section every close
  // takes anyway and next to the byte counters every close with traffic adds to, so it adds
  // no lock and no contended line, and nothing per message. It counts as an error even during
  // a drain; `drained` holds the other closes after the first stop signal.
  void free_slot(std::uint32_t index, bool failed_connection = false) noexcept {
    Slot& slot = slots()[index];
    if (slot.address != kNoAddress) {
      AddressEntry& entry = addresses()[slot.address];
      if (--entry.count == 0) remove(slot.address);
    }
    slot = {0, kNoAddress, free_head};
    free_head = index;
    --open;
    open_mirror.store(open, std::memory_order_relaxed);
    if (failed_connection) {
      errors.fetch_add(1, std::memory_order_relaxed);
    } else if (phase.load(std::memory_order_relaxed) != static_cast<int>(Phase::kServing)) {
      drained.fetch_add(1, std::memory_order_relaxed);
    }
  }
};

namespace {

class SharedLock {
 public:
  explicit SharedLock(pthread_mutex_t& mutex) noexcept : mutex_(mutex) {
    if (::pthread_mutex_lock(&mutex_) == EOWNERDEAD) ::pthread_mutex_consistent(&mutex_);
  }
  SharedLock(const SharedLock&) = delete;
  SharedLock& operator=(const SharedLock&) = delete;
  ~SharedLock() { ::pthread_mutex_unlock(&mutex_); }

 private:
  pthread_mutex_t& mutex_;
};

std::uint32_t power_of_two_at_least(std::size_t n) {
  std::uint32_t capacity = 16;
  while (capacity < n)
    capacity *= 2;
  return capacity;
}

}  // namespace

Endpoint::Endpoint(EndpointLimits limits, std::shared_ptr<spdlog::logger> log)
    : limits_(std::move(limits)), log_(std::move(log)) {
  const auto slot_count = static_cast<std::uint32_t>(limits_.max_connections);
  const std::uint32_t address_capacity =
      limits_.max_per_ip == 0 ? 0 : power_of_two_at_least(2 * limits_.max_connections);
  mapping_size_ = sizeof(Shared) + slot_count * sizeof(Shared::Slot) +
                  std::size_t{address_capacity} * sizeof(Shared::AddressEntry);
  // Anonymous and shared: zero-filled, touched only as far as it is used.
  void* memory =
      ::mmap(nullptr, mapping_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(), "mmap (endpoint state)");
  }
  shared_ = new (memory) Shared{};
  pthread_mutexattr_t attributes;
  ::pthread_mutexattr_init(&attributes);
  ::pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
  ::pthread_mutex_init(&shared_->mutex, &attributes);
  ::pthread_mutexattr_destroy(&attributes);
  shared_->slot_count = slot_count;
  shared_->address_capacity = address_capacity;
  // Slots are handed out in order and only then written, so the table's pages join a process's
  // RSS as connections need them, in the worker that takes them, and not all at start in
  // echod's first process (where forked workers would count them a second time).
  shared_->free_head = kNoSlot;
  shared_->untouched = 0;
  shared_->last_cap_warning_ns = std::numeric_limits<std::int64_t>::min() / 2;
  shared_->last_address_warning_ns = std::numeric_limits<std::int64_t>::min() / 2;
}

Endpoint::~Endpoint() {
  ::pthread_mutex_destroy(&shared_->mutex);
  ::munmap(shared_, mapping_size_);
}

template <typename Describe>
void Endpoint::warn_refused(std::atomic<std::int64_t>& last, Describe&& describe) noexcept {
  const std::int64_t now = steady_ns();
  std::int64_t previous = last.load(std::memory_order_relaxed);
  const std::int64_t interval = std::chrono::nanoseconds(kWarningInterval).count();
  if (now - previous < interval || !last.compare_exchange_strong(previous, now)) return;
  try {
    const EndpointCounts c = counts();
    log_->warn("{} (refused so far: {} by max-connections, {} by max-connections-per-ip)",
               describe(), c.refused_max_connections, c.refused_per_ip);
  } catch (...) {  // logging must not take a connection's place
  }
}

Admission Endpoint::admit(int fd, const sockaddr_storage& peer, socklen_t) noexcept {
  if (limits_.tcp_keepalive.count() > 0) {
    const int idle = static_cast<int>(std::max<long long>(1, limits_.tcp_keepalive.count() / 1000));
    set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle);
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, std::max(1, idle / 3));
    set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, 3);
  }
  if (limits_.tcp_user_timeout.count() > 0) {
    set_int_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT,
                   static_cast<int>(limits_.tcp_user_timeout.count()));
  }

  const in6_addr address = as_v6(peer);
  const bool per_address =
      shared_->address_capacity > 0 &&
      std::none_of(limits_.per_ip_exempt.begin(), limits_.per_ip_exempt.end(),
                   [&](const AddressRange& range) { return range.contains(address); });
  enum class Verdict { kAdmitted, kOverCap, kOverAddressCap } verdict;
  std::uint32_t slot = kNoSlot;
  std::uint32_t address_count = 0;
  {
    SharedLock lock(shared_->mutex);
    std::uint32_t entry = kNoAddress;
    if (shared_->free_head == kNoSlot && shared_->untouched == shared_->slot_count) {
      verdict = Verdict::kOverCap;
    } else if (per_address && ((entry = shared_->find_or_add(address)) == kNoAddress ||
                               shared_->addresses()[entry].count >= limits_.max_per_ip)) {
      verdict = Verdict::kOverAddressCap;
      if (entry != kNoAddress) address_count = shared_->addresses()[entry].count;
    } else {
      verdict = Verdict::kAdmitted;
      if (entry != kNoAddress) ++shared_->addresses()[entry].count;
      if (shared_->free_head != kNoSlot) {
        slot = shared_->free_head;
        shared_->free_head = shared_->slots()[slot].next_free;
      } else {
        slot = shared_->untouched++;
      }
      shared_->slots()[slot] = {::getpid(), entry, kNoSlot};
      ++shared_->open;
      shared_->open_mirror.store(shared_->open, std::memory_order_relaxed);
    }
  }
  switch (verdict) {
    case Verdict::kAdmitted:
      shared_->accepted.fetch_add(1, std::memory_order_relaxed);
      return Admission(this, slot);
    case Verdict::kOverCap:
      shared_->refused_max_connections.fetch_add(1, std::memory_order_relaxed);
      warn_refused(shared_->last_cap_warning_ns, [&] {
        return fmt::format("connection cap reached (max-connections={}): closing new connections",
                           limits_.max_connections);
      });
      return {};
    case Verdict::kOverAddressCap:
      shared_->refused_per_ip.fetch_add(1, std::memory_order_relaxed);
      warn_refused(shared_->last_address_warning_ns, [&] {
        return fmt::format(
            "per-address cap reached for {} ({} open, max-connections-per-ip={}): closing new "
            "connections from it",
            format_v6(address), address_count, limits_.max_per_ip);
      });
      return {};
  }
  return {};
}

void Endpoint::release_slot(std::uint32_t slot, bool failed) noexcept {
  SharedLock lock(shared_->mutex);
  if (shared_->slots()[slot].owner != 0) shared_->free_slot(slot, failed);
}

void Endpoint::release_owned_by(pid_t pid) noexcept {
  SharedLock lock(shared_->mutex);
  for (std::uint32_t i = 0; i < shared_->untouched; ++i) {
    if (shared_->slots()[i].owner == pid) shared_->free_slot(i);
  }
}

void Endpoint::count_shed(std::uint64_t connections) noexcept {
  shared_->shed_emfile.fetch_add(connections, std::memory_order_relaxed);
}
void Endpoint::count_idle_close() noexcept {
  shared_->closed_idle.fetch_add(1, std::memory_order_relaxed);
}
void Endpoint::count_bytes(std::uint64_t in, std::uint64_t out) noexcept {
  if (in != 0) shared_->bytes_in.fetch_add(in, std::memory_order_relaxed);
  if (out != 0) shared_->bytes_out.fetch_add(out, std::memory_order_relaxed);
}

EndpointCounts Endpoint::counts() const noexcept {
  EndpointCounts c;
  c.accepted = shared_->accepted.load();
  c.refused_max_connections = shared_->refused_max_connections.load();
  c.refused_per_ip = shared_->refused_per_ip.load();
  c.shed_emfile = shared_->shed_emfile.load();
  c.closed_idle = shared_->closed_idle.load();
  c.drained = shared_->drained.load();
  c.errors = shared_->errors.load();
  c.bytes_in = shared_->bytes_in.load();
  c.bytes_out = shared_->bytes_out.load();
  {
    SharedLock lock(shared_->mutex);
    c.open = shared_->open;
  }
  return c;
}

std::string Endpoint::summary() const {
  const EndpointCounts c = counts();
  return fmt::format(
      "summary: accepted={} refused_max_connections={} refused_per_ip={} shed_emfile={} "
      "closed_idle={} drained={} errors={} bytes_in={} bytes_out={}",
      c.accepted, c.refused_max_connections, c.refused_per_ip, c.shed_emfile, c.closed_idle,
      c.drained, c.errors, c.bytes_in, c.bytes_out);
}

Phase Endpoint::phase() const noexcept {
  return static_cast<Phase>(shared_->phase.load(std::memory_order_relaxed));
}

std::atomic<int>* Endpoint::phase_cell() noexcept {
  return &shared_->phase;
}

const std::atomic<std::uint32_t>* Endpoint::open_cell() const noexcept {
  return &shared_->open_mirror;
}

void Finisher::add(Fd socket, std::span<const char> unsent) {
  if (endpoint_.phase() != Phase::kFinishing) return;  // a stop now: `socket` just closes
  pending_.push_back({std::move(socket), std::vector<char>(unsent.begin(), unsent.end())});
}

void Finisher::run() noexcept {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + endpoint_.limits().linger;
  std::vector<pollfd> pollfds;
  std::array<char, 16 * 1024> discard;  // NOLINT: only written into
  std::uint64_t flushed = 0;
  while (!pending_.empty()) {
    pollfds.clear();
    for (Pending& p : pending_) {
      if (!p.shut && p.sent == p.unsent.size()) {
        ::shutdown(p.socket.get(), SHUT_WR);  // FIN once everything read was sent back
        p.shut = true;
      }
      pollfds.push_back({p.socket.get(), static_cast<short>(p.shut ? POLLIN : POLLOUT), 0});
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    if (::poll(pollfds.data(), pollfds.size(), static_cast<int>(left.count())) < 0 &&
        errno != EINTR) {
      break;
    }
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      Pending& p = pending_[i];
      if (pollfds[i].revents == 0) continue;
      if (!p.shut) {
        const ssize_t n = ::send(p.socket.get(), p.unsent.data() + p.sent, p.unsent.size() - p.sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          p.sent += static_cast<std::size_t>(n);
          flushed += static_cast<std::uint64_t>(n);
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          p.socket.reset();  // the peer is gone
        }
        continue;
      }
      // Lingering: drop what the client still sends, until its FIN (or an error).
      ssize_t n;
      while ((n = ::recv(p.socket.get(), discard.data(), discard.size(), MSG_DONTWAIT)) > 0) {
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) p.socket.reset();
    }
    std::erase_if(pending_, [](const Pending& p) { return !p.socket.valid(); });
  }
  pending_.clear();  // the deadline passed: close what is left
  endpoint_.count_bytes(0, flushed);
}

}  // namespace echod
