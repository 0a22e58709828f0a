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
  # Unresolved symbols are link errors here, not dlopen errors in the field.
  target_link_options(${target} PRIVATE "LINKER:--no-undefined")
  set_property(GLOBAL APPEND PROPERTY ECHOD_MODELS ${arg_NAME})
endfunction()
