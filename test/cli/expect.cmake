# Runs COMMAND (words separated by "|") and checks its exit status and output:
#   cmake -DCOMMAND=word|word|... -DEXPECT_EXIT=N [-DEXPECT_STDOUT=regex] [-DEXPECT_STDERR=regex]
#         [-DREJECT_STDERR=regex] -P expect.cmake
# ctest's PASS_REGULAR_EXPRESSION alone would ignore the exit status; a CLI error must have both.
string(REPLACE "|" ";" COMMAND "${COMMAND}")
execute_process(COMMAND ${COMMAND}
  RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 20)
message("exit status: ${status}\n--- stdout ---\n${out}--- stderr ---\n${err}")
if(NOT status STREQUAL EXPECT_EXIT)
  message(FATAL_ERROR "expected exit status ${EXPECT_EXIT}, got ${status}")
endif()
if(DEFINED EXPECT_STDOUT AND NOT out MATCHES "${EXPECT_STDOUT}")
  message(FATAL_ERROR "stdout does not match: ${EXPECT_STDOUT}")
endif()
if(DEFINED EXPECT_STDERR AND NOT err MATCHES "${EXPECT_STDERR}")
  message(FATAL_ERROR "stderr does not match: ${EXPECT_STDERR}")
endif()
if(DEFINED REJECT_STDERR AND err MATCHES "${REJECT_STDERR}")
  message(FATAL_ERROR "stderr must not match: ${REJECT_STDERR}")
endif()
