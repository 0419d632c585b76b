# The Python binding's tests, included from the top-level CMakeLists.txt when
# tests are on. run_tests.sh builds the binding the way users install it (a
# fresh venv, pip install ./python, which builds libwsgate with CMake), so it
# does not depend on this build's targets. Skipped in the sanitizer build: an
# ASan-instrumented libwsgate cannot be loaded into an uninstrumented Python.
if(NOT WSGATE_SANITIZE)
  add_test(NAME python_binding
           COMMAND ${CMAKE_CURRENT_LIST_DIR}/run_tests.sh
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(python_binding PROPERTIES TIMEOUT 600)
endif()
