#include <cerrno>

#include <catch2/catch.hpp>

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
