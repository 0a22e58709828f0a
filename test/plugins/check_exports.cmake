# A model plugin exports exactly one symbol, its descriptor: nothing else can clash with echod,
# another plugin, or a library either of them loads.
#   cmake -DNM=<nm> -DFILES=<file>|<file>|... -P check_exports.cmake
cmake_minimum_required(VERSION 3.25)  # policies as in the project, not the -P defaults
string(REPLACE "|" ";" FILES "${FILES}")
set(failures "")
foreach(file IN LISTS FILES)
  execute_process(COMMAND "${NM}" -D --defined-only "${file}"
    RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 30)
  if(NOT status STREQUAL "0")
    string(APPEND failures "${file}: nm failed (${status}): ${err}\n")
    continue()
  endif()
  string(REGEX REPLACE "[^\n]* echod_plugin_descriptor\n" "" extra "${out}")
  if(NOT out MATCHES " [DR] echod_plugin_descriptor\n" OR NOT extra STREQUAL "")
    string(APPEND failures "${file} exports more than echod_plugin_descriptor:\n${out}\n")
  else()
    message("${file}: ${out}")
  endif()
endforeach()
if(failures)
  message(FATAL_ERROR "${failures}")
endif()
