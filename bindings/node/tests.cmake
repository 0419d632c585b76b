# The Node.js binding's tests (bindings/node/test/run_tests.sh: node --test
# against the installed library), included from the top-level CMakeLists.txt
# when tests are on.
#
# Not registered in ASan/TSan builds: such a libwsgate needs its sanitizer
# runtime loaded first, and the node binary is not built with one (preloading
# the runtime into node reports node's own leaks and races, not ours).
find_program(WSG_NODE_EXECUTABLE node)
if(TARGET wsgate_node AND WSG_NODE_EXECUTABLE AND NOT WSGATE_SANITIZE AND NOT WSGATE_TSAN AND NOT WSGATE_FUZZ)
  add_test(NAME node_binding
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/test/run_tests.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  # cmake --install writes install_manifest.txt into the build tree.
  set_tests_properties(node_binding PROPERTIES
    TIMEOUT 120
    RESOURCE_LOCK wsgate_install
    ENVIRONMENT "NODE=${WSG_NODE_EXECUTABLE}")
  # It installs the whole build: every installed program must exist.
  wsg_server_test(node_binding wsgate_node wsgate wsgate-echo wsgate-chat wsgate-bench)
endif()
