# Runs echod once and checks what a user would see: exit status, stdout, stderr.
#   cmake -DECHOD=<path> -DARGS=word|word|... -DEXPECT_EXIT=N
#         [-DEXPECT_STDOUT=regex] [-DREJECT_STDOUT=regex] [-DEXPECT_STDERR=regex]
#         [-DSTDERR_LINES=N] [-DPLUGIN_PATH=dirs]
#         [-DWORK=dir -DCOPY=file [-DFILE_MODE=octal] [-DDIR_MODE=octal]] -P run_echod.cmake
# "|" separates ARGS (a ";" would be split again on the way through ctest); @WORK@ in ARGS is
# replaced by WORK. With WORK, the directory is made afresh (mode 0755), COPY is copied into it,
# and then the copy and the directory get FILE_MODE and DIR_MODE: the world-writable cases.
# PLUGIN_PATH sets ECHOD_PLUGIN_PATH for echod. A crash is never a pass: a signal makes the
# status a text such as "Segmentation fault", which matches no expected number. The checks are
# those of test/check_output.cmake.
# -P scripts start with every policy unset: ask for today's behaviour (CMP0053 would otherwise
# expand "@WORK@" in quoted arguments before string(REPLACE) sees it).
cmake_minimum_required(VERSION 3.25)
if(DEFINED WORK)
  file(REMOVE_RECURSE "${WORK}")
  file(MAKE_DIRECTORY "${WORK}")
  execute_process(COMMAND chmod 0755 "${WORK}" COMMAND_ERROR_IS_FATAL ANY)
  if(DEFINED COPY)
    get_filename_component(copy_name "${COPY}" NAME)
    file(COPY "${COPY}" DESTINATION "${WORK}")
    if(DEFINED FILE_MODE)
      execute_process(COMMAND chmod ${FILE_MODE} "${WORK}/${copy_name}" COMMAND_ERROR_IS_FATAL ANY)
    endif()
  endif()
  if(DEFINED DIR_MODE)
    execute_process(COMMAND chmod ${DIR_MODE} "${WORK}" COMMAND_ERROR_IS_FATAL ANY)
  endif()
  string(REPLACE "@WORK@" "${WORK}" ARGS "${ARGS}")
endif()
if(DEFINED PLUGIN_PATH)
  set(ENV{ECHOD_PLUGIN_PATH} "${PLUGIN_PATH}")
else()
  unset(ENV{ECHOD_PLUGIN_PATH})
endif()
unset(ENV{ECHOD_FIXTURE_CODE_RAN})

string(REPLACE "|" ";" ARGS "${ARGS}")
execute_process(COMMAND "${ECHOD}" ${ARGS}
  RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 20)
string(REPLACE ";" " " shown "${ARGS}")
message("echod ${shown}\nexit status: ${status}\n--- stdout ---\n${out}--- stderr ---\n${err}---")

if(DEFINED WORK)  # leave nothing world-writable behind
  execute_process(COMMAND chmod -R o-w "${WORK}")
endif()

include("${CMAKE_CURRENT_LIST_DIR}/../check_output.cmake")
