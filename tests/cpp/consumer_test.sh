#!/usr/bin/env bash
# The README's "Use from C++" snippet, exactly as written (between
# <!-- snippet:cpp:begin --> and <!-- snippet:cpp:end -->), built with
# -std=c++17 -Wall -Wextra -Werror -pedantic and run:
#   1. against the build tree: it echoes text and binary to a websockets
#      client and stops on SIGTERM with exit 0;
#   2. installed into a temporary prefix (wsgate.hpp must be there): built
#      through pkg-config and through find_package(wsgate), each run and
#      stopped (SIGINT, SIGTERM), loading the installed library;
#   3. the header compiles with -fno-exceptions (the error_code forms).
# The snippet listens on port 9000; it is built with port 0 here (never
# colliding with a real server), its "listen" log event gives the port.
# Registered for the plain build (tests/cpp/cpp.cmake); run by hand on a
# sanitizer build, the programs get the same sanitizer as the library.
#
# usage: consumer_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
cache=$build/CMakeCache.txt
[ -r "$cache" ] || { echo "cpp_consumer: no CMakeCache.txt in $build" >&2; exit 2; }
PY=${WSG_TEST_PYTHON:-/usr/bin/python3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-cpp-consumer.XXXXXX")
pid=""
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2> /dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

cachevar() { sed -n "s/^$1:[A-Za-z_]*=//p" "$cache" | head -n 1; }
step() { echo "== $*"; }
die() {
    echo "FAIL: $*" >&2
    exit 1
}
# Runs a command with its output in a log, shown only on failure.
run() {
    if ! "$@" > "$tmp/cmd.log" 2>&1; then
        sed 's/^/    /' "$tmp/cmd.log" >&2
        die "command failed: $*"
    fi
}

CXX=$(cachevar CMAKE_CXX_COMPILER)
CMAKE=$(cachevar CMAKE_COMMAND)
: "${CXX:=c++}" "${CMAKE:=cmake}"
strict=(-std=c++17 -Wall -Wextra -Werror -pedantic)
san=()
case "$(cachevar WSGATE_SANITIZE)" in
    ON | on | TRUE | true | 1) san=(-fsanitize=address,undefined -fno-omit-frame-pointer) ;;
esac
case "$(cachevar WSGATE_TSAN)" in
    ON | on | TRUE | true | 1) san=(-fsanitize=thread) ;;
esac

# ---------------------------------------------------------------- the snippet
step "README.md: the C++ snippet"
sed -n '/<!-- snippet:cpp:begin -->/,/<!-- snippet:cpp:end -->/p' "$src/README.md" |
    sed -e '/<!-- snippet:cpp:/d' -e '/^```/d' > "$tmp/snippet.cpp"
lines=$(grep -cv '^\s*$' "$tmp/snippet.cpp" || true)
[ "$lines" -gt 5 ] || die "README.md has no C++ snippet between <!-- snippet:cpp:begin --> and <!-- snippet:cpp:end -->"
grep -q '"listen.port", 9000' "$tmp/snippet.cpp" ||
    die "the README's C++ snippet no longer sets \"listen.port\", 9000: update $0"
sed 's/"listen.port", 9000/"listen.port", 0/' "$tmp/snippet.cpp" > "$tmp/snippet0.cpp"
echo "$lines lines"

# serve BINARY SIGNAL [CHECK_ECHO]: start it, wait for its "listen" event,
# optionally echo through it, stop it with SIGNAL: exit 0 and a "stop" event.
serve() {
    local bin=$1 sig=$2 check_echo=${3:-} port=""
    "$bin" 2> "$tmp/run.log" &
    pid=$!
    for _ in $(seq 200); do
        port=$(sed -n 's/.*"event":"listen".*"port":\([0-9][0-9]*\).*/\1/p' "$tmp/run.log" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$tmp/run.log" >&2; die "$bin did not log its listen event"; }
    if [ -n "$check_echo" ]; then
        "$PY" - "$port" << 'PYEOF' || die "$bin did not echo"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(f"ws://127.0.0.1:{sys.argv[1]}/", open_timeout=10) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), 10) == "hello"
        await ws.send(b"\x00\xff")
        assert await asyncio.wait_for(ws.recv(), 10) == b"\x00\xff"
asyncio.run(main())
PYEOF
    fi
    kill -"$sig" "$pid"
    for _ in $(seq 200); do kill -0 "$pid" 2> /dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2> /dev/null; then die "$bin ignored SIG$sig for 10 s"; fi
    local rc=0
    wait "$pid" || rc=$?
    pid=""
    [ $rc -eq 0 ] || { cat "$tmp/run.log" >&2; die "$bin exited $rc on SIG$sig, want 0"; }
    grep -q '"event":"stop"' "$tmp/run.log" || { cat "$tmp/run.log" >&2; die "$bin logged no stop"; }
    echo "ran on port $port, stopped by SIG$sig${check_echo:+, echoed text and binary}"
}

step "built against the build tree ($build)"
run "$CXX" "${strict[@]}" ${san[@]+"${san[@]}"} -I"$src/include" "$tmp/snippet0.cpp" \
    -L"$build" -lwsgate -Wl,-rpath,"$build" -o "$tmp/snippet-build"
serve "$tmp/snippet-build" TERM echo

# ---------------------------------------------------------------- installed
prefix=$tmp/prefix
libdir=$prefix/$(cachevar CMAKE_INSTALL_LIBDIR)
incdir=$prefix/$(cachevar CMAKE_INSTALL_INCLUDEDIR)
step "install into $prefix"
run "$CMAKE" --install "$build" --prefix "$prefix"
cmp -s "$incdir/wsgate/wsgate.hpp" "$src/include/wsgate/wsgate.hpp" ||
    die "the install did not put include/wsgate/wsgate.hpp into ${incdir#"$prefix"/}/wsgate/"
real_lib=$(readlink -f "$libdir/libwsgate.so")

# Must load the installed library, not the build tree's.
loads_installed() {
    local resolved
    resolved=$(ldd "$1" | sed -n 's/.*libwsgate\.so\.0 => \([^ ]*\).*/\1/p')
    [ "$(readlink -f "$resolved")" = "$real_lib" ] || die "$1 loads '$resolved', not the installed $real_lib"
}

step "installed, through pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pc_flags=$(pkg-config --cflags --libs wsgate)
# shellcheck disable=SC2086 # pkg-config output is a list of words
run "$CXX" "${strict[@]}" ${san[@]+"${san[@]}"} "$tmp/snippet0.cpp" $pc_flags \
    -Wl,-rpath,"$libdir" -o "$tmp/snippet-pc"
loads_installed "$tmp/snippet-pc"
serve "$tmp/snippet-pc" INT

step "installed, through find_package(wsgate)"
cmake_args=(-S "$src/tests/cpp/consumer" -B "$tmp/consumer-cmake" -DSNIPPET="$tmp/snippet0.cpp"
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=Debug
    -DCMAKE_BUILD_RPATH="$libdir"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if [ ${#san[@]} -gt 0 ]; then
    cmake_args+=(-DCMAKE_CXX_FLAGS="${san[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]}")
fi
run "$CMAKE" "${cmake_args[@]}"
found=$(sed -n 's/^wsgate_DIR:[A-Z]*=//p' "$tmp/consumer-cmake/CMakeCache.txt")
[ "$(readlink -f "$found")" = "$(readlink -f "$libdir/cmake/wsgate")" ] ||
    die "find_package(wsgate) found '$found', not the installed $libdir/cmake/wsgate"
run "$CMAKE" --build "$tmp/consumer-cmake"
loads_installed "$tmp/consumer-cmake/snippet"
serve "$tmp/consumer-cmake/snippet" TERM

step "the header without exceptions (-fno-exceptions: the std::error_code forms)"
cat > "$tmp/noexcept.cpp" << 'EOF2'
#include <wsgate/wsgate.hpp>
static_assert(WSGATE_HPP_EXCEPTIONS == 0, "built without exceptions");
int main() {
    std::error_code ec;
    wsgate::Config cfg(ec);
    cfg.set("listen.port", 0, ec);
    wsgate::Server srv(cfg, ec);
    srv.on_message([](wsgate::ServerRef s, wsgate::ConnId id, wsgate::Message m) {
        std::error_code send_ec;
        s.send(id, m, send_ec);
    }, ec);
    srv.start(ec);
    return ec ? 1 : 0;
}
EOF2
run "$CXX" "${strict[@]}" -fno-exceptions -fsyntax-only -I"$incdir" "$tmp/noexcept.cpp"

step "a handler of the wrong shape is a compile error that names the signature"
cat > "$tmp/wrong.cpp" << 'EOF2'
#include <wsgate/wsgate.hpp>
void wrong(wsgate::Server &srv) {
    srv.on_message([](wsgate::ServerRef, wsgate::ConnId) {});
}
EOF2
if "$CXX" "${strict[@]}" -fsyntax-only -I"$incdir" "$tmp/wrong.cpp" > "$tmp/wrong.log" 2>&1; then
    die "a handler with the wrong signature compiled"
fi
grep -q 'on_message takes a callable as (wsgate::ServerRef, wsgate::ConnId, wsgate::Message)' "$tmp/wrong.log" ||
    { cat "$tmp/wrong.log" >&2; die "the compile error does not name on_message's signature"; }

echo "cpp_consumer ok: the README's C++ snippet builds strictly and runs against the build tree and the installed library (pkg-config, find_package)"
