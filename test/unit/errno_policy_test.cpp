#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <memory>
#include <sstream>

#include "echod/errno_policy.hpp"

using echod::classify_errno;
using echod::ErrnoClass;

TEST_CASE("errno policy sorts every errno a loop meets", "[errno]") {
  CHECK(classify_errno(EINTR) == ErrnoClass::kRetry);
  CHECK(classify_errno(EAGAIN) == ErrnoClass::kWouldBlock);
  CHECK(classify_errno(ECONNRESET) == ErrnoClass::kPeerGone);
  CHECK(classify_errno(EPIPE) == ErrnoClass::kPeerGone);
  CHECK(classify_errno(ECONNABORTED) == ErrnoClass::kConnectionAborted);
  CHECK(classify_errno(EMFILE) == ErrnoClass::kOutOfDescriptors);
  CHECK(classify_errno(ENFILE) == ErrnoClass::kOutOfDescriptors);
  CHECK(classify_errno(EBADF) == ErrnoClass::kUnexpected);
  CHECK(std::string(echod::errno_name(ECONNRESET)) == "ECONNRESET");
}

TEST_CASE("a failed call is logged once, by name, and its errno returned", "[errno]") {
  std::ostringstream lines;
  spdlog::logger log("test", std::make_shared<spdlog::sinks::ostream_sink_st>(lines));
  log.set_pattern("%l %v");
  CHECK(echod::log_call_failure(log, "epoll_wait", EBADF) == EBADF);
  CHECK(lines.str() == "error epoll_wait: Bad file descriptor (EBADF)\n");
}
