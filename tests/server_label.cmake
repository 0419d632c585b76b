# Included from the top-level CMakeLists.txt before bench/ and tests/.
# Every test that starts a server carries the label `server`: scripts/test.sh
# runs exactly those under ThreadSanitizer (-DWSGATE_TSAN=ON, `ctest -L
# server`), and the target `server-tests` builds what they need.
# wsg_label_server() decides it from the test's source, so a new suite is
# never left out: C and C++ suites
# start one through tsrv_start() or wsg_server_start/run(), pytest suites run
# wsgate-echo or wsgate-chat (echo_proc.py, the start_echo fixture).
set(WSG_STARTS_SERVER_RE "tsrv_start|wsg_server_start|wsg_server_run|WSGATE_ECHO|WSGATE_CHAT|echo_proc|start_echo")
add_custom_target(server-tests)
# wsg_label_server(TEST SOURCE [TARGETS...]): label TEST when SOURCE starts a
# server; TARGETS (the programs it runs) then join server-tests.
function(wsg_label_server name src)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
  file(READ ${src} text)
  if(text MATCHES "${WSG_STARTS_SERVER_RE}")
    set_property(TEST ${name} APPEND PROPERTY LABELS server)
    if(ARGN)
      add_dependencies(server-tests ${ARGN})
    endif()
  endif()
endfunction()
