// ConnectionBuffer against a model of the byte stream: random interleavings of client writes,
// server reads (echo_once), flushes, partial sends, EAGAIN, EINTR and resets, driven the way a
// model drives it (echo_once only while wants_read(), flush while wants_write()). After every
// step: the bytes that came out are exactly a prefix of the bytes that went in, in order; every
// byte received is either sent or queued; the queue never exceeds high_water + the scratch size;
// a caught-up buffer holds no memory. At the end, with the socket taking everything, every byte
// comes back.
//
// Input: 2 bytes high-water, 2 bytes scratch size, then the script: the first half of each
// remaining byte pair picks the next step, and the fake socket consumes bytes as it is called.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "echod/connection_buffer.hpp"
#include "fake_socket.hpp"
#include "fuzz_target.hpp"

namespace fake_socket {

State& state() {
  static State current;
  return current;
}

namespace {

// The next decision byte; once the script is used up, -1: the call succeeds in full.
int next_decision() {
  State& s = state();
  if (s.script_left == 0) return -1;
  --s.script_left;
  return *s.script++;
}

}  // namespace

ssize_t recv(int fd, void* buffer, std::size_t length, int flags) {
  State& s = state();
  FUZZ_EXPECT(fd == kFd);
  FUZZ_EXPECT(flags == 0);
  // echo_once asks for at least one byte, at most one scratch buffer and at most the room left
  // below the high-water mark (so the queue stays within high_water + one scratch buffer).
  FUZZ_EXPECT(length >= 1 && length <= s.recv_limit);
  FUZZ_EXPECT(length <= std::max<std::size_t>(s.room, 1));
  const int decision = next_decision();
  if (decision >= 0 && decision % 8 == 0) return errno = EAGAIN, -1;
  if (decision >= 0 && decision % 8 == 1) return errno = EINTR, -1;
  if (s.reset || decision == 0xfe) return s.reset = true, errno = ECONNRESET, -1;  // sticky
  if (s.inbound.empty()) {
    if (s.client_done) return 0;
    return errno = EAGAIN, -1;
  }
  std::size_t take = std::min(length, s.inbound.size());
  if (decision >= 0) take = std::min<std::size_t>(take, 1 + decision * 8);  // a short read
  auto* out = static_cast<char*>(buffer);
  for (std::size_t i = 0; i < take; ++i) {
    out[i] = s.inbound.front();
    s.inbound.pop_front();
  }
  s.received += take;
  return static_cast<ssize_t>(take);
}

ssize_t send(int fd, const void* buffer, std::size_t length, int flags) {
  State& s = state();
  FUZZ_EXPECT(fd == kFd);
  FUZZ_EXPECT(flags & MSG_NOSIGNAL);  // a vanished peer must not kill the server with SIGPIPE
  FUZZ_EXPECT(length >= 1);
  const int decision = next_decision();
  if (decision >= 0 && decision % 8 == 0) return errno = EAGAIN, -1;
  if (decision >= 0 && decision % 8 == 1) return errno = EINTR, -1;
  if (s.reset || decision == 0xfe) return s.reset = true, errno = EPIPE, -1;  // sticky
  std::size_t take = length;
  if (decision >= 0) take = std::min<std::size_t>(length, 1 + decision * 16);  // a partial send
  s.outbound.append(static_cast<const char*>(buffer), take);
  return static_cast<ssize_t>(take);
}

}  // namespace fake_socket

namespace {

// Byte `index` of the client's stream: varies with position, so a lost, doubled or reordered
// byte shows.
char stream_byte(std::size_t index) {
  return static_cast<char>((index * 131 + (index >> 8) * 7 + 3) & 0xff);
}

constexpr std::size_t kMaxStream = 64 * 1024;

struct Run {
  echod::ConnectionBuffer buffer;
  std::vector<char> scratch;
  std::size_t high_water;
  std::size_t written = 0;  // bytes the client has sent so far
  std::size_t checked = 0;  // bytes of outbound already compared with the stream

  Run(std::size_t high, std::size_t scratch_size)
      : buffer(high), scratch(scratch_size), high_water(high) {}

  // The invariants, after every step.
  void check() {
    const fake_socket::State& s = fake_socket::state();
    FUZZ_EXPECT(s.outbound.size() <= written);
    for (; checked < s.outbound.size(); ++checked)
      FUZZ_EXPECT(s.outbound[checked] == stream_byte(checked));
    // Every byte received is sent or queued (after a reset, what could not be sent is dropped).
    if (!s.reset) FUZZ_EXPECT(s.received == s.outbound.size() + buffer.pending());
    FUZZ_EXPECT(buffer.pending() <= high_water + scratch.size());
    FUZZ_EXPECT(buffer.wants_write() == (buffer.pending() > 0));
    if (buffer.pending() == 0) FUZZ_EXPECT(buffer.reserved() == 0);
  }

  echod::IoStatus read() {
    fake_socket::state().room = high_water - buffer.pending();  // wants_read(): pending < mark
    return buffer.echo_once(fake_socket::kFd, scratch);
  }

  // A status from the buffer: true while the connection goes on.
  bool accept(echod::IoStatus status) {
    const fake_socket::State& s = fake_socket::state();
    switch (status) {
      case echod::IoStatus::kProgress:
      case echod::IoStatus::kWouldBlock:
        return true;
      case echod::IoStatus::kEof:
        FUZZ_EXPECT(s.client_done && s.inbound.empty());
        return false;
      case echod::IoStatus::kPeerGone:
        FUZZ_EXPECT(s.reset);
        FUZZ_EXPECT(buffer.error() == ECONNRESET || buffer.error() == EPIPE);
        return false;
      case echod::IoStatus::kError:
        break;
    }
    // Only EAGAIN, EINTR, ECONNRESET and EPIPE are injected: none of them is unexpected.
    FUZZ_EXPECT(status != echod::IoStatus::kError);
    return false;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const std::size_t high_water = 1 + ((data[0] | data[1] << 8) % 4096);
  const std::size_t scratch_size = 1 + ((data[2] | data[3] << 8) % 2048);
  fake_socket::State& s = fake_socket::state();
  s = fake_socket::State{};
  s.script = data + 4;
  s.script_left = size - 4;
  s.recv_limit = scratch_size;
  Run run(high_water, scratch_size);

  bool open = true;
  while (open && s.script_left > 0) {
    const std::uint8_t step = *s.script++;
    --s.script_left;
    switch (step % 4) {
      case 0: {  // the client sends a burst (bounded in total, so one input stays fast)
        if (s.client_done || run.written >= kMaxStream) break;
        const std::size_t burst = 1 + (step >> 2) * 7;
        for (std::size_t i = 0; i < burst; ++i)
          s.inbound.push_back(stream_byte(run.written++));
        break;
      }
      case 1:  // the socket is readable and the model reads, as models do, only below the mark
        if (run.buffer.wants_read()) open = run.accept(run.read());
        break;
      case 2:  // the socket is writable and the model flushes what is queued
        if (run.buffer.wants_write()) open = run.accept(run.buffer.flush(fake_socket::kFd));
        break;
      case 3:  // the client shuts down its sending side
        s.client_done = true;
        break;
    }
    run.check();
  }
  if (!open || s.reset) return 0;  // over: what came out so far was checked above

  // The rest: the client is done and the socket takes everything; every byte must come back.
  s.client_done = true;
  for (std::size_t rounds = 0;; ++rounds) {
    FUZZ_EXPECT(rounds < 4 * (run.written + 2));  // each round makes progress
    if (run.buffer.wants_write()) {
      FUZZ_EXPECT(run.accept(run.buffer.flush(fake_socket::kFd)));
    } else if (run.buffer.wants_read()) {
      if (!run.accept(run.read())) break;
    }
    run.check();
  }
  run.check();
  FUZZ_EXPECT(s.outbound.size() == run.written);
  FUZZ_EXPECT(run.buffer.pending() == 0 && run.buffer.reserved() == 0);
  return 0;
}
