# The Python binding's tests, included from the top-level CMakeLists.txt when
# tests are on. run_tests.sh builds the binding in a fresh venv with pip
# install ./python against this build's libwsgate (WSGATE_LIB_DIR): the
# self-contained install users run (pip building libwsgate itself with CMake)
# is tested by fresh_clone, as python/README.md writes it, and doing it here
# too cost about two minutes of every CI run. Skipped in the ASan build: an
# ASan-instrumented libwsgate cannot be loaded into an uninstrumented Python.
#
# In a ThreadSanitizer build (WSGATE_TSAN) it runs too: the extension is built
# with -fsanitize=thread against this build's libwsgate (WSGATE_LIB_DIR), and
# Python runs with the TSan runtime preloaded (WSGATE_TEST_PRELOAD), since the
# runtime must come before every other library and CPython does not link it.
# CPython itself is not instrumented, so reports come from wsgate and the glue;
# the GIL is a pthread mutex the runtime sees, so no false reports come from it.
if(WSGATE_TSAN)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libtsan.so
    OUTPUT_VARIABLE WSG_LIBTSAN OUTPUT_STRIP_TRAILING_WHITESPACE)
  add_test(NAME python_binding
           COMMAND ${CMAKE_CURRENT_LIST_DIR}/run_tests.sh
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(python_binding PROPERTIES TIMEOUT 600
    ENVIRONMENT "WSGATE_LIB_DIR=$<TARGET_FILE_DIR:wsgate>;WSGATE_INCLUDE_DIR=${PROJECT_SOURCE_DIR}/include;CFLAGS=-fsanitize=thread;LDFLAGS=-fsanitize=thread;WSGATE_TEST_PRELOAD=${WSG_LIBTSAN}")
  wsg_server_test(python_binding wsgate)
elseif(NOT WSGATE_SANITIZE)
  add_test(NAME python_binding
           COMMAND ${CMAKE_CURRENT_LIST_DIR}/run_tests.sh
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(python_binding PROPERTIES TIMEOUT 600
    ENVIRONMENT "WSGATE_LIB_DIR=$<TARGET_FILE_DIR:wsgate>;WSGATE_INCLUDE_DIR=${PROJECT_SOURCE_DIR}/include")
  wsg_server_test(python_binding)
endif()
