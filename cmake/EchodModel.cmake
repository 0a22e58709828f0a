# echod_add_model(NAME <model> SOURCES <files...> [LIBRARIES <targets...>])
#
# Builds one concurrency model as a plugin echod can load: a MODULE library named
# echod-model-<model>.so that exports only its descriptor, placed where echod looks for models.
# Used by the in-tree strategies and, through the installed echod package, by out-of-tree ones.
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
  set_property(GLOBAL APPEND PROPERTY ECHOD_MODELS ${arg_NAME})
endfunction()
