# echod_add_model(NAME <model> SOURCES <files...> [LIBRARIES <targets...>])
#
# Builds one concurrency model as a plugin echod can load: a MODULE library named
# echod-model-<model>.so that exports only its descriptor, placed where echod looks for models.
# Used by the in-tree strategies and, through the installed echod package, by out-of-tree ones.
# Beside this file, wherever it is (the source tree or an installed package).
set(_ECHOD_MODEL_MODULE_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(echod_add_model)
  cmake_parse_arguments(arg "" "NAME;OUTPUT_DIRECTORY" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT arg_NAME OR NOT arg_SOURCES)
    message(FATAL_ERROR "echod_add_model needs NAME and SOURCES")
  endif()
  set(target "echod-model-${arg_NAME}")
  add_library(${target} MODULE ${arg_SOURCES})
  target_link_libraries(${target} PRIVATE echod::sdk ${arg_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(arg_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${arg_OUTPUT_DIRECTORY}")
  elseif(DEFINED ECHOD_PLUGIN_BUILD_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ECHOD_PLUGIN_BUILD_DIR}")
  endif()
  # Installed into <libdir>/echod, a model finds the SDK one directory up; a model built out of
  # tree also records where the echod it was built against keeps the SDK (the link path).
  set_target_properties(${target} PROPERTIES
    INSTALL_RPATH "$ORIGIN/.."
    INSTALL_RPATH_USE_LINK_PATH ON)
  # Unresolved symbols are link errors here, not dlopen errors in the field.
  target_link_options(${target} PRIVATE "LINKER:--no-undefined")
  # Hidden visibility is not enough: what Boost marks visible (its exceptions' type info) stays
  # exported, and g++ exports static members of template code such as Boost.Asio's service ids
  # as STB_GNU_UNIQUE, which binds every plugin to one copy and makes dlclose() a no-op. The
  # version script keeps the descriptor as the only global symbol.
  set(version_script "${CMAKE_CURRENT_BINARY_DIR}/echod-model.map")
  file(CONFIGURE OUTPUT "${version_script}"
    CONTENT "{\n  global: echod_plugin_descriptor;\n  local: *;\n};\n")
  target_link_options(${target} PRIVATE "LINKER:--version-script=${version_script}")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${version_script}")
  # Against an installed echod, the SDK hash in the model's build signature is computed here, at
  # the model's build time, from the headers it really compiles against, and found before the
  # installed echod/sdk_hash.hpp: a model built against edited or other headers is then refused
  # by echod, naming both hashes. In echod's own tree the SDK target generates it once.
  get_target_property(sdk_imported echod::sdk IMPORTED)
  if(sdk_imported)
    get_target_property(sdk_include_dirs echod::sdk INTERFACE_INCLUDE_DIRECTORIES)
    set(header_dir "")
    set(headers "")
    foreach(dir IN LISTS sdk_include_dirs)
      if(EXISTS "${dir}/echod/server_model.hpp")
        set(header_dir "${dir}")
        file(GLOB headers CONFIGURE_DEPENDS "${dir}/echod/*.hpp")
        list(FILTER headers EXCLUDE REGEX "/sdk_hash\\.hpp$")
        break()
      endif()
    endforeach()
    if(NOT header_dir)
      message(FATAL_ERROR "echod_add_model: no echod/server_model.hpp in ${sdk_include_dirs}")
    endif()
    set(hash_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}-sdk-hash")
    add_custom_command(OUTPUT "${hash_dir}/echod/sdk_hash.hpp"
      COMMAND "${CMAKE_COMMAND}" "-DHEADER_DIR=${header_dir}"
              "-DOUTPUT=${hash_dir}/echod/sdk_hash.hpp"
              -P "${_ECHOD_MODEL_MODULE_DIR}/EchodSdkHash.cmake"
      DEPENDS ${headers} "${_ECHOD_MODEL_MODULE_DIR}/EchodSdkHash.cmake"
      COMMENT "Hashing the echod SDK headers in ${header_dir}" VERBATIM)
    target_sources(${target} PRIVATE "${hash_dir}/echod/sdk_hash.hpp")
    target_include_directories(${target} BEFORE PRIVATE "${hash_dir}")
  endif()
  set_property(GLOBAL APPEND PROPERTY ECHOD_MODELS ${arg_NAME})
endfunction()
