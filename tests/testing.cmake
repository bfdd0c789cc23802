# tri_unit_test(NAME SOURCES... LIBS lib...): a C unit test program labelled `unit`.
# Exit code 77 means "skipped" (as in liburing's tests).
function(tri_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit SKIP_RETURN_CODE 77 TIMEOUT 120)
endfunction()
