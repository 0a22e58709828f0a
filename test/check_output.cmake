# The checks a command-line test makes of one finished run, shared by test/cli/expect.cmake and
# test/plugins/run_echod.cmake. Reads `status`, `out` and `err` (as execute_process filled them)
# and whichever of these the script was given:
#   EXPECT_EXIT=N                                        exit status; a crash never matches
#   EXPECT_STDOUT, REJECT_STDOUT, EXPECT_STDERR, REJECT_STDERR=regex
#   STDERR_LINES=N                                       exactly N complete lines on stderr
# and fails the script naming every check that did not hold. ctest's PASS_REGULAR_EXPRESSION
# alone would ignore the exit status; a CLI error must have both.
set(failures "")
if(NOT status STREQUAL EXPECT_EXIT)
  string(APPEND failures "expected exit status ${EXPECT_EXIT}, got ${status}\n")
endif()
if(DEFINED EXPECT_STDOUT AND NOT out MATCHES "${EXPECT_STDOUT}")
  string(APPEND failures "stdout does not match: ${EXPECT_STDOUT}\n")
endif()
if(DEFINED REJECT_STDOUT AND out MATCHES "${REJECT_STDOUT}")
  string(APPEND failures "stdout must not match: ${REJECT_STDOUT}\n")
endif()
if(DEFINED EXPECT_STDERR AND NOT err MATCHES "${EXPECT_STDERR}")
  string(APPEND failures "stderr does not match: ${EXPECT_STDERR}\n")
endif()
if(DEFINED REJECT_STDERR AND err MATCHES "${REJECT_STDERR}")
  string(APPEND failures "stderr must not match: ${REJECT_STDERR}\n")
endif()
if(DEFINED STDERR_LINES)
  string(REGEX MATCHALL "\n" newlines "${err}")
  list(LENGTH newlines lines)
  if(NOT lines EQUAL STDERR_LINES OR NOT (err STREQUAL "" OR err MATCHES "\n$"))
    string(APPEND failures "expected ${STDERR_LINES} complete line(s) on stderr, got ${lines}\n")
  endif()
endif()
if(failures)
  message(FATAL_ERROR "${failures}")
endif()
