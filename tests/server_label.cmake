# Included from the top-level CMakeLists.txt before bench/ and tests/.
# Every test that starts a server carries the label `server`: scripts/test.sh
# runs exactly those under ThreadSanitizer (-DWSGATE_TSAN=ON, `ctest -L
# server`), and the target `server-tests` builds what they need.
# wsg_label_server() decides it from the test's source, so a new suite is
# never left out: C and C++ suites
# start one through tsrv_start() or wsg_server_start/run(), pytest suites run
# wsgate-echo or wsgate-chat (echo_proc.py, the start_echo fixture), the
# cluster suites start theirs through tests/cluster/cluster_util.h and the
# history suites through history_server().
set(WSG_STARTS_SERVER_RE "tsrv_start|wsg_server_start|wsg_server_run|WSGATE_ECHO|WSGATE_CHAT|echo_proc|start_echo|cluster_util\\.h|history_server")
add_custom_target(server-tests)
# Under ThreadSanitizer, which makes the server several times slower, a
# server test gets WSGATE_TSAN_TIMEOUT_FACTOR times its TIMEOUT: only ctest's
# limit on the whole suite is scaled (it is about slowness), no assertion is.
set(WSGATE_TSAN_TIMEOUT_FACTOR 3 CACHE STRING "ctest TIMEOUT factor for server tests under ThreadSanitizer")

# wsg_server_test(TEST [TARGETS...]): TEST starts a server (call it after
# TEST's TIMEOUT is set, in the directory that declares TEST); TARGETS (the
# programs it runs) join server-tests.
function(wsg_server_test name)
  set_property(TEST ${name} APPEND PROPERTY LABELS server)
  if(ARGN)
    add_dependencies(server-tests ${ARGN})
  endif()
  get_test_property(${name} TIMEOUT timeout)
  if(WSGATE_TSAN AND timeout)
    math(EXPR timeout "${timeout} * ${WSGATE_TSAN_TIMEOUT_FACTOR}")
    set_tests_properties(${name} PROPERTIES TIMEOUT ${timeout})
  endif()
endfunction()

# wsg_label_server(TEST SOURCE [TARGETS...]): wsg_server_test(TEST TARGETS...)
# when SOURCE starts a server.
function(wsg_label_server name src)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
  file(READ ${src} text)
  if(text MATCHES "${WSG_STARTS_SERVER_RE}")
    wsg_server_test(${name} ${ARGN})
  endif()
endfunction()

