# The C++ binding's tests (include/wsgate/wsgate.hpp), included from
# tests/CMakeLists.txt. They link the shared library as a C++ user would,
# not the core's objects, so tests/cpp/test_*.cpp are left out of the unit
# test glob there and built here:
#   test_cpp_binding  the binding against real clients (label server: ASan
#                     and TSan stages too), strict flags
#   cpp_example       examples/cpp (wsgate-cpp-rooms) against websockets clients
#   cpp_consumer      the README's C++ snippet, built with strict flags against
#                     the build tree and the installed library (pkg-config and
#                     find_package), and run (plain build only)
set(WSG_CPP_STRICT -Wall -Wextra -Werror -pedantic)

add_executable(test_cpp_binding ${CMAKE_CURRENT_LIST_DIR}/test_cpp_binding.cpp)
target_link_libraries(test_cpp_binding PRIVATE wsgate wsg_testsupport Threads::Threads)
target_compile_options(test_cpp_binding PRIVATE ${WSG_CPP_STRICT})
set_target_properties(test_cpp_binding PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
add_test(NAME test_cpp_binding COMMAND test_cpp_binding)
set_tests_properties(test_cpp_binding PROPERTIES TIMEOUT 60)
wsg_server_test(test_cpp_binding test_cpp_binding)

# test_cpp_example.py is registered by the pytest glob (test `cpp_example`);
# it needs the example's path and starts a server.
if(TEST cpp_example AND TARGET wsgate-cpp-rooms)
  set_property(TEST cpp_example APPEND PROPERTY ENVIRONMENT "WSGATE_CPP_ROOMS=$<TARGET_FILE:wsgate-cpp-rooms>")
  set_tests_properties(cpp_example PROPERTIES TIMEOUT 60)
  wsg_server_test(cpp_example wsgate-cpp-rooms)
endif()

# The README's C++ snippet against the build tree and the installed library.
# Plain build only: it checks compiling, packaging and a short run (about
# 5 s of CPU, three compiles and a CMake configure); the binding's behaviour
# under ASan and TSan is test_cpp_binding's and cpp_example's. It installs,
# so it shares install_consumer's lock.
find_program(WSG_CPP_BASH bash)
if(WSG_CPP_BASH AND NOT WSGATE_SANITIZE AND NOT WSGATE_TSAN)
  add_test(NAME cpp_consumer COMMAND ${WSG_CPP_BASH} ${CMAKE_CURRENT_LIST_DIR}/consumer_test.sh
    ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  set_tests_properties(cpp_consumer PROPERTIES TIMEOUT 120 RESOURCE_LOCK wsgate_install
    ENVIRONMENT "WSG_TEST_PYTHON=${WSG_TEST_PYTHON}")
endif()
