# The plugin kit end to end, as a model author outside this tree uses it:
#   1. cmake --install the current echod build into a fresh prefix;
#   2. configure and build plugins/example against that prefix with find_package(echod);
#   3. drop the .so into a plugin directory and check the INSTALLED echod lists it, next to the
#      built-in models it finds relative to its own binary;
#   4. run the conformance suite against it through the installed echod (no rebuild of echod);
#   5. cmake --install the model, and select it by name with no plugin flag at all;
#   6. edit an installed SDK header, build the example again against it, and check the installed
#      echod refuses that build, naming both SDK hashes and what to rebuild.
# cmake -DBUILD_DIR= -DSOURCE_DIR= -DWORK= -DLIBDIR= -DGENERATOR= -DCXX= -DBUILD_TYPE=
#       -DCONFORMANCE=<conformance executable> -P out_of_tree.cmake
cmake_minimum_required(VERSION 3.25)  # policies as in the project, not the -P defaults
foreach(var BUILD_DIR SOURCE_DIR WORK LIBDIR GENERATOR CXX CONFORMANCE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "out_of_tree.cmake needs -D${var}=")
  endif()
endforeach()

# Runs one step, shows its output, and stops the test if it fails or does not match.
function(step title)
  cmake_parse_arguments(arg "" "TIMEOUT;EXPECT_STATUS;EXPECT_STDOUT;EXPECT_STDERR;OUTPUT" "COMMAND"
    ${ARGN})
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 60)
  endif()
  if(NOT DEFINED arg_EXPECT_STATUS)
    set(arg_EXPECT_STATUS 0)
  endif()
  string(REPLACE ";" " " shown "${arg_COMMAND}")
  message("== ${title}\n$ ${shown}")
  execute_process(COMMAND ${arg_COMMAND}
    RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${arg_TIMEOUT})
  message("${out}${err}")
  if(NOT status STREQUAL arg_EXPECT_STATUS)
    message(FATAL_ERROR "step '${title}' ended with status ${status}, not ${arg_EXPECT_STATUS}")
  endif()
  if(DEFINED arg_EXPECT_STDOUT AND NOT out MATCHES "${arg_EXPECT_STDOUT}")
    message(FATAL_ERROR "step '${title}': stdout does not match ${arg_EXPECT_STDOUT}")
  endif()
  if(DEFINED arg_EXPECT_STDERR AND NOT err MATCHES "${arg_EXPECT_STDERR}")
    message(FATAL_ERROR "step '${title}': stderr does not match ${arg_EXPECT_STDERR}")
  endif()
  if(arg_OUTPUT)
    set(${arg_OUTPUT} "${out}" PARENT_SCOPE)
  endif()
endfunction()

set(prefix "${WORK}/prefix")
set(plugins "${WORK}/plugins")
set(echod "${prefix}/bin/echod")
set(model_file "echod-model-splice.so")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}" "${plugins}")
# Plugin directories must not be writable by anyone; do not depend on the umask.
execute_process(COMMAND chmod 0755 "${WORK}" "${plugins}" COMMAND_ERROR_IS_FATAL ANY)

step("install echod" TIMEOUT 120
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(installed
    bin/echod
    ${LIBDIR}/libechod-sdk.so.1
    ${LIBDIR}/echod/echod-model-epoll.so
    include/echod/server_model.hpp
    ${LIBDIR}/cmake/echod/echodConfig.cmake
    ${LIBDIR}/cmake/echod/echodConfigVersion.cmake
    ${LIBDIR}/cmake/echod/echodTargets.cmake
    ${LIBDIR}/cmake/echod/EchodModel.cmake)
  if(NOT EXISTS "${prefix}/${installed}")
    message(FATAL_ERROR "cmake --install did not install ${installed}")
  endif()
endforeach()

step("the installed echod loads its own models, with no plugin flag"
  COMMAND "${echod}" --list-models
  EXPECT_STDOUT "(^|\n)epoll +[^\n]*\n" EXPECT_STDERR "^$")

step("configure the example against the installed echod"
  COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/plugins/example" -B "${WORK}/build"
          -G "${GENERATOR}" "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CXX}"
          "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
file(STRINGS "${WORK}/build/CMakeCache.txt" found_at REGEX "^echod_DIR:")
if(NOT found_at STREQUAL "echod_DIR:PATH=${prefix}/${LIBDIR}/cmake/echod")
  message(FATAL_ERROR "find_package(echod) found the wrong package: ${found_at}")
endif()
step("build the example" TIMEOUT 300 COMMAND "${CMAKE_COMMAND}" --build "${WORK}/build")
file(COPY "${WORK}/build/${model_file}" DESTINATION "${plugins}")
step("it exports only its descriptor (echod_add_model from the installed package)"
  COMMAND "${CMAKE_COMMAND}" -DNM=nm "-DFILES=${plugins}/${model_file}"
          -P "${CMAKE_CURRENT_LIST_DIR}/check_exports.cmake")

step("the installed echod lists it beside its own models"
  COMMAND "${echod}" "--plugin-dir=${plugins}" --list-models
  EXPECT_STDOUT "(^|\n)epoll +[^\n]*\n(.*\n)?splice +thread per connection"
  EXPECT_STDERR "^$")
step("and describes it"
  COMMAND "${echod}" "--plugin-dir=${plugins}" --model=splice --describe-model
  EXPECT_STDOUT "name: splice\n.*capabilities: concurrent,multi-threaded\nfile: ${plugins}/${model_file}\n")
step("its options reach --help"
  COMMAND "${echod}" "--plugin-dir=${plugins}" --model=splice --help
  EXPECT_STDOUT "--splice.max-connections")

step("the conformance suite through the installed echod" TIMEOUT 170
  COMMAND "${CONFORMANCE}" --model splice --echod "${echod}" --echod-arg "--plugin-dir=${plugins}")

step("install the example beside the built-in models"
  COMMAND "${CMAKE_COMMAND}" --install "${WORK}/build")
step("echod finds it by name with no plugin flag"
  COMMAND "${echod}" --model=splice --describe-model
  EXPECT_STDOUT "file: ${prefix}/${LIBDIR}/echod/${model_file}\n" EXPECT_STDERR "^$")

# The SDK's layout is checked, not trusted: a model compiled against headers other than echod's
# (older ones, or edited as here) carries another SDK hash in its build signature.
file(STRINGS "${prefix}/include/echod/sdk_hash.hpp" echod_hash REGEX "define ECHOD_SDK_HASH")
string(REGEX MATCH "[0-9a-f]+\"$" echod_hash "${echod_hash}")
string(REPLACE "\"" "" echod_hash "${echod_hash}")
if(NOT echod_hash)
  message(FATAL_ERROR "no ECHOD_SDK_HASH in the installed echod/sdk_hash.hpp")
endif()
file(APPEND "${prefix}/include/echod/acceptor.hpp"
  "\n// Edited by out_of_tree.cmake: what a model built against other headers sees.\n"
  "namespace echod { struct ChangedLayout { int added_field; }; }\n")
step("configure the example against an edited SDK header"
  COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/plugins/example" -B "${WORK}/build-changed"
          -G "${GENERATOR}" "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CXX}"
          "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
step("build it" TIMEOUT 300 COMMAND "${CMAKE_COMMAND}" --build "${WORK}/build-changed")
file(STRINGS "${WORK}/build-changed/echod-model-splice-sdk-hash/echod/sdk_hash.hpp" model_hash
  REGEX "define ECHOD_SDK_HASH")
string(REGEX MATCH "[0-9a-f]+\"$" model_hash "${model_hash}")
string(REPLACE "\"" "" model_hash "${model_hash}")
if(NOT model_hash OR model_hash STREQUAL echod_hash)
  message(FATAL_ERROR "the edited header did not change the model's SDK hash (${model_hash})")
endif()
step("the installed echod refuses it, naming both hashes and what to rebuild" EXPECT_STATUS 2
  COMMAND "${echod}" "--plugin=${WORK}/build-changed/${model_file}" --list-models
  EXPECT_STDERR "^echod: cannot use plugin ${WORK}/build-changed/${model_file}: built against other SDK headers \\(sdk-${model_hash} vs sdk-${echod_hash}\\): plugin '[^'\n]*', echod '[^'\n]*'; rebuild the model against the SDK headers installed with this echod [^\n]*\n$")
message("out-of-tree model built, installed, loaded by name and tested; built against an edited "
  "header, refused: OK")
