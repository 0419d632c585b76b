# Packaging and integration tests (included from tests/CMakeLists.txt):
#   install_consumer    install into a temporary prefix; build and run a C consumer
#                       through pkg-config and through find_package(wsgate)
#   abi_symbols         ledger tests/abi/symbols.txt == WSG_API in the header == nm -D
#   echo_example        wsgate-echo's command line, stdout line, limits, signals, logs
#   interop_websockets  wsgate-echo against the Python websockets client
#   make_jwks           scripts/make-jwks.py: a JWKS wsgate-echo verifies real tokens with
#   chat_example        wsgate-chat (the chat demo) against websockets clients
#   fresh_clone         the README's install and quick starts in a clone with nothing beside it
set(WSG_PACKAGING_DIR ${CMAKE_CURRENT_SOURCE_DIR}/packaging)

find_program(WSG_BASH bash)
find_program(WSG_SH sh)
if(WSG_BASH)
  add_test(NAME install_consumer
    COMMAND ${WSG_BASH} ${WSG_PACKAGING_DIR}/consumer_test.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  # cmake --install writes install_manifest.txt into the build tree: never run
  # two installs of one tree at once.
  set_tests_properties(install_consumer PROPERTIES
    TIMEOUT 300
    RESOURCE_LOCK wsgate_install)
  # It installs the whole build: every installed program must exist.
  wsg_label_server(install_consumer ${WSG_PACKAGING_DIR}/consumer/main.c wsgate wsgate-echo
    wsgate-chat wsgate-bench)
  if(TARGET wsgate_node)  # the Node.js addon is installed too (bindings/node)
    add_dependencies(server-tests wsgate_node)
  endif()
endif()

if(WSG_SH)
  add_test(NAME abi_symbols
    COMMAND ${WSG_SH} ${WSG_PACKAGING_DIR}/check_symbols.sh ${PROJECT_SOURCE_DIR} $<TARGET_FILE:wsgate>)
  set_tests_properties(abi_symbols PROPERTIES TIMEOUT 60)
endif()

# The Python tests need Debian's interpreter (pytest, websockets); the python3
# on PATH may be another build without them (see LWS-NOTES.md).
set(WSG_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with pytest and websockets for the integration tests")
if(TARGET wsgate-echo AND EXISTS ${WSG_TEST_PYTHON})
  foreach(t IN ITEMS echo_example:test_echo_example.py interop_websockets:test_interop.py
                     make_jwks:test_make_jwks.py chat_example:test_chat_example.py)
    string(REPLACE ":" ";" t ${t})
    list(GET t 0 name)
    list(GET t 1 file)
    add_test(NAME ${name}
      COMMAND ${WSG_TEST_PYTHON} -m pytest -q -rxX -p no:cacheprovider ${WSG_PACKAGING_DIR}/${file}
      WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    set_tests_properties(${name} PROPERTIES
      TIMEOUT 300
      ENVIRONMENT "WSGATE_ECHO=$<TARGET_FILE:wsgate-echo>;WSGATE_CHAT=$<TARGET_FILE:wsgate-chat>;PYTHONDONTWRITEBYTECODE=1")
    wsg_label_server(${name} ${WSG_PACKAGING_DIR}/${file} wsgate-echo wsgate-chat)
  endforeach()
elseif(NOT EXISTS ${WSG_TEST_PYTHON})
  message(WARNING "${WSG_TEST_PYTHON} not found: echo_example and interop_websockets are not registered")
endif()

# The README's install-then-consume steps and quick starts, exactly as written,
# in a clone with nothing beside it (root; private mount and network
# namespaces). Once, in the plain build (it builds its own); alone, since it compiles wsgate twice.
if(WSG_BASH AND NOT WSGATE_SANITIZE AND NOT WSGATE_TSAN AND EXISTS ${WSG_TEST_PYTHON})
  add_test(NAME fresh_clone COMMAND ${WSG_BASH} ${WSG_PACKAGING_DIR}/fresh_clone_test.sh ${PROJECT_SOURCE_DIR})
  set_tests_properties(fresh_clone PROPERTIES TIMEOUT 900 RUN_SERIAL TRUE)
endif()
