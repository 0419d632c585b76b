# The Go binding's tests (bindings/go/run_tests.sh), included from the
# top-level CMakeLists.txt when tests are on: gofmt, go vet, go test -race
# and the README's Go snippet, against this build installed into a
# temporary prefix and found through pkg-config only.
#
# Plain builds only. In an ASan build (WSGATE_SANITIZE) or a TSan build
# (WSGATE_TSAN) the installed library needs its sanitizer runtime loaded
# first, which a Go program does not do (and Go's -race brings its own
# ThreadSanitizer runtime, which cannot share a process with GCC's); the
# binding's races are what go test -race checks here.
find_program(WSG_GO go)
if(NOT WSGATE_SANITIZE AND NOT WSGATE_TSAN AND NOT WSGATE_FUZZ)
  if(WSG_GO)
    add_test(NAME go_binding
      COMMAND ${CMAKE_CURRENT_LIST_DIR}/run_tests.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
    # cmake --install writes install_manifest.txt into the build tree: never
    # two installs of one tree at once (install_consumer takes the same lock).
    set_tests_properties(go_binding PROPERTIES TIMEOUT 600 RESOURCE_LOCK wsgate_install)
    wsg_server_test(go_binding wsgate wsgate-echo wsgate-chat wsgate-bench)
  else()
    message(WARNING "go not found: the Go binding's tests (go_binding) are not registered; "
                    "scripts/deps.sh installs golang-go")
  endif()
endif()
