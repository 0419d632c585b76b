# The ABI check (tests/abi/README.md), included from tests/CMakeLists.txt:
#   abi_check           abidiff of the baseline tests/abi/wsgate.abi vs the built libwsgate.so
#   abi_check_selftest  the check fails on doctored copies (removal, enum change...)
# Plain builds with debug info only: abidw reads DWARF, and the sanitizer
# stages would check the same ABI again.
find_program(WSG_ABI_BASH bash)
if(WSG_ABI_BASH AND NOT WSGATE_SANITIZE AND NOT WSGATE_TSAN AND NOT WSGATE_FUZZ)
  if(CMAKE_BUILD_TYPE MATCHES "^(Debug|RelWithDebInfo)$")
    add_test(NAME abi_check COMMAND ${WSG_ABI_BASH} ${CMAKE_CURRENT_LIST_DIR}/check_abi.sh
      ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_LIST_DIR}/wsgate.abi $<TARGET_FILE:wsgate>)
    add_test(NAME abi_check_selftest COMMAND ${WSG_ABI_BASH} ${CMAKE_CURRENT_LIST_DIR}/check_abi_selftest.sh
      ${PROJECT_SOURCE_DIR} $<TARGET_FILE:wsgate>)
    set_tests_properties(abi_check abi_check_selftest PROPERTIES TIMEOUT 60)
  else()
    message(STATUS "abi_check not registered: CMAKE_BUILD_TYPE '${CMAKE_BUILD_TYPE}' has no debug info "
                   "(use Debug or RelWithDebInfo)")
  endif()
endif()
