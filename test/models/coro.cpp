// Model coro: the same promises as asio (test/models/asio.cpp), checked with coro.threads=2.
#define ECHOD_ASIO_TEST_MODEL "coro"
#include "asio.cpp"  // NOLINT(bugprone-suspicious-include): one text tests both Asio models
