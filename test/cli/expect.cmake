# Runs COMMAND (words separated by "|") and checks its exit status and output:
#   cmake -DCOMMAND=word|word|... -DEXPECT_EXIT=N [-DEXPECT_STDOUT=regex] [-DEXPECT_STDERR=regex]
#         [-DREJECT_STDERR=regex] -P expect.cmake
# (the checks are those of test/check_output.cmake).
cmake_minimum_required(VERSION 3.25)
string(REPLACE "|" ";" COMMAND "${COMMAND}")
execute_process(COMMAND ${COMMAND}
  RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 20)
message("exit status: ${status}\n--- stdout ---\n${out}--- stderr ---\n${err}")
include("${CMAKE_CURRENT_LIST_DIR}/../check_output.cmake")
