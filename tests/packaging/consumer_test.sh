#!/usr/bin/env bash
# Installs a wsgate build into a temporary prefix and uses it the way a
# downstream project would:
#   - the installed files are where the package files say they are,
#   - the installed library has SONAME libwsgate.so.0 and no build-tree RUNPATH,
#   - the installed header compiles as strict C99 (and as C++),
#   - tests/packaging/consumer/main.c builds and runs against the installed copy
#     (1) through pkg-config and (2) through find_package(wsgate) in CMake.
# With a WSGATE_SANITIZE=ON build the consumers are built with ASan/UBSan too,
# since the installed library then needs the sanitizer runtime in the executable;
# with a WSGATE_TSAN=ON build, with ThreadSanitizer.
#
# usage: consumer_test.sh SOURCE_DIR BUILD_DIR
# Set WSGATE_KEEP_TMP=1 to keep the temporary directory for inspection.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
cache=$build/CMakeCache.txt
[ -r "$cache" ] || { echo "consumer_test: no CMakeCache.txt in $build" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-consumer.XXXXXX")
cleanup() {
    if [ "${WSGATE_KEEP_TMP:-0}" = 1 ]; then
        echo "consumer_test: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Reads one variable from the build's cache ("NAME:TYPE=value").
cachevar() {
    sed -n "s/^$1:[A-Za-z_]*=//p" "$cache" | head -n 1
}

step() { echo "== $*"; }
die() {
    echo "FAIL: $*" >&2
    exit 1
}
# Runs a command with its output in a log; shows the log only on failure.
run() {
    local log=$tmp/log.$((++nlog))
    if ! "$@" > "$log" 2>&1; then
        echo "FAIL: command failed: $*" >&2
        sed 's/^/    /' "$log" >&2
        exit 1
    fi
}
nlog=0

CC=$(cachevar CMAKE_C_COMPILER)
CXX=$(cachevar CMAKE_CXX_COMPILER)
CMAKE=$(cachevar CMAKE_COMMAND)
: "${CC:=cc}" "${CXX:=c++}" "${CMAKE:=cmake}"
libdir_rel=$(cachevar CMAKE_INSTALL_LIBDIR)
incdir_rel=$(cachevar CMAKE_INSTALL_INCLUDEDIR)
: "${libdir_rel:=lib}" "${incdir_rel:=include}"
case "$libdir_rel$incdir_rel" in
    /*) die "CMAKE_INSTALL_LIBDIR/INCLUDEDIR are absolute in $build; cannot install into a temporary prefix" ;;
esac
case "$(cachevar WSGATE_SANITIZE)" in
    ON | On | on | TRUE | True | true | YES | Yes | yes | Y | y | 1)
        san=(-fsanitize=address,undefined -fno-omit-frame-pointer)
        # The consumers and the library are torn down in order; any leak or
        # error report must fail the test.
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
        echo "consumer_test: sanitizer build: consumers get ${san[*]}"
        ;;
    *) san=() ;;
esac
# A WSGATE_TSAN=ON library needs the ThreadSanitizer runtime in the consumers.
case "$(cachevar WSGATE_TSAN)" in
    ON | On | on | TRUE | True | true | YES | Yes | yes | Y | y | 1)
        san=(-fsanitize=thread)
        echo "consumer_test: ThreadSanitizer build: consumers get ${san[*]}"
        ;;
esac

prefix=$tmp/prefix
libdir=$prefix/$libdir_rel
incdir=$prefix/$incdir_rel

# ---------------------------------------------------------------- install
step "install $build into $prefix"
run "$CMAKE" --install "$build" --prefix "$prefix"
for f in "$incdir/wsgate/wsgate.h" "$libdir/libwsgate.so" "$libdir/libwsgate.so.0" \
    "$libdir/pkgconfig/wsgate.pc" "$libdir/cmake/wsgate/wsgateConfig.cmake" \
    "$libdir/cmake/wsgate/wsgateConfigVersion.cmake" "$libdir/cmake/wsgate/wsgateTargets.cmake"; do
    [ -e "$f" ] || die "install did not create ${f#"$prefix"/}"
done
real_lib=$(readlink -f "$libdir/libwsgate.so")
[ "$(readlink -f "$libdir/libwsgate.so.0")" = "$real_lib" ] ||
    die "libwsgate.so and libwsgate.so.0 do not name the same file"

# ---------------------------------------------------------------- SONAME
step "SONAME and RUNPATH of the installed library"
dyn=$(readelf -d "$real_lib")
soname=$(printf '%s\n' "$dyn" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = libwsgate.so.0 ] || die "installed library has SONAME '$soname', want libwsgate.so.0"
if printf '%s\n' "$dyn" | grep -E '\((RPATH|RUNPATH)\)' | grep -F -q "$build"; then
    die "installed library still has a RUNPATH into the build tree: $(printf '%s\n' "$dyn" | grep -E 'R(UN)?PATH')"
fi
echo "SONAME $soname"

# ---------------------------------------------------------------- header
step "installed header compiles as strict C99 and as C++"
printf '#include <wsgate/wsgate.h>\n' > "$tmp/hdr.c"
run "$CC" -std=c99 -pedantic -Werror -Wall -Wextra -fsyntax-only -I"$incdir" "$tmp/hdr.c"
run "$CC" -std=c99 -pedantic -Werror -fsyntax-only -x c "$incdir/wsgate/wsgate.h"
if command -v "$CXX" > /dev/null 2>&1; then
    printf '#include <wsgate/wsgate.h>\nint main() { return wsg_version_num() == WSG_VERSION_NUM ? 0 : 1; }\n' \
        > "$tmp/hdr.cpp"
    run "$CXX" -std=c++11 -pedantic -Werror -Wall -Wextra -fsyntax-only -I"$incdir" "$tmp/hdr.cpp"
fi

# Runs a consumer binary: it must say "consumer ok", exit 0, and load the
# installed library (not the build tree's or a system copy).
check_consumer() {
    local bin=$1 out resolved
    resolved=$(ldd "$bin" | sed -n 's/.*libwsgate\.so\.0 => \([^ ]*\).*/\1/p')
    [ -n "$resolved" ] || die "$bin does not load libwsgate.so.0: $(ldd "$bin")"
    [ "$(readlink -f "$resolved")" = "$real_lib" ] ||
        die "$bin loads $resolved, not the installed $real_lib"
    if ! out=$(timeout -k 5 60 "$bin" 2>&1); then
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        die "$bin failed"
    fi
    printf '%s\n' "$out"
    printf '%s\n' "$out" | grep -q '^consumer ok' || die "$bin did not print 'consumer ok'"
}

# ---------------------------------------------------------------- pkg-config
step "consumer through pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pc_path=$(pkg-config --path wsgate 2> /dev/null || true)
if [ -n "$pc_path" ] && [ "$(readlink -f "$pc_path")" != "$(readlink -f "$libdir/pkgconfig/wsgate.pc")" ]; then
    die "pkg-config picked $pc_path instead of the installed $libdir/pkgconfig/wsgate.pc"
fi
run pkg-config --exists --print-errors wsgate
header_version=$(awk '$1 == "#define" && $2 ~ /^WSG_VERSION_(MAJOR|MINOR|PATCH)$/ { v[$2] = $3 }
    END { printf "%s.%s.%s", v["WSG_VERSION_MAJOR"], v["WSG_VERSION_MINOR"], v["WSG_VERSION_PATCH"] }' \
    "$incdir/wsgate/wsgate.h")
pc_version=$(pkg-config --modversion wsgate)
[ "$pc_version" = "$header_version" ] ||
    die "pkg-config --modversion says $pc_version, the installed header says $header_version"
pc_incdir=$(pkg-config --variable=includedir wsgate)
pc_libdir=$(pkg-config --variable=libdir wsgate)
[ "$(readlink -f "$pc_incdir")" = "$(readlink -f "$incdir")" ] ||
    die "wsgate.pc says includedir=$pc_incdir, but the header was installed in $incdir (is the .pc relocatable?)"
[ "$(readlink -f "$pc_libdir")" = "$(readlink -f "$libdir")" ] ||
    die "wsgate.pc says libdir=$pc_libdir, but the library was installed in $libdir (is the .pc relocatable?)"
pc_flags=$(pkg-config --cflags --libs wsgate)
echo "pkg-config --cflags --libs wsgate: $pc_flags"
# shellcheck disable=SC2086 # pkg-config output is a list of words
run "$CC" -std=c99 -Wall -Wextra -Werror ${san[@]+"${san[@]}"} \
    "$src/tests/packaging/consumer/main.c" $pc_flags -Wl,-rpath,"$libdir" -o "$tmp/consumer-pc"
check_consumer "$tmp/consumer-pc"

# ---------------------------------------------------------------- CMake
step "consumer through find_package(wsgate)"
cmake_args=(-S "$src/tests/packaging/consumer" -B "$tmp/consumer-cmake"
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Debug
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if [ ${#san[@]} -gt 0 ]; then
    cmake_args+=(-DCMAKE_C_FLAGS="${san[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]}")
fi
run "$CMAKE" "${cmake_args[@]}"
found=$(sed -n 's/^wsgate_DIR:[A-Z]*=//p' "$tmp/consumer-cmake/CMakeCache.txt")
[ "$(readlink -f "$found")" = "$(readlink -f "$libdir/cmake/wsgate")" ] ||
    die "find_package(wsgate) found '$found', not the installed $libdir/cmake/wsgate"
run "$CMAKE" --build "$tmp/consumer-cmake"
check_consumer "$tmp/consumer-cmake/consumer"

# ---------------------------------------------------------------- installed example
if [ -x "$prefix/bin/wsgate-echo" ]; then
    step "installed wsgate-echo runs against the installed library"
    resolved=$(LD_LIBRARY_PATH=$libdir ldd "$prefix/bin/wsgate-echo" |
        sed -n 's/.*libwsgate\.so\.0 => \([^ ]*\).*/\1/p')
    [ "$(readlink -f "$resolved")" = "$real_lib" ] ||
        die "installed wsgate-echo loads '$resolved', not $real_lib"
    LD_LIBRARY_PATH=$libdir timeout -k 5 30 "$prefix/bin/wsgate-echo" --help > "$tmp/echo-help.txt" 2>&1 ||
        die "installed wsgate-echo --help failed: $(cat "$tmp/echo-help.txt")"
    grep -q '^usage: wsgate-echo' "$tmp/echo-help.txt" || die "installed wsgate-echo --help printed no usage"
    if ! readelf -d "$prefix/bin/wsgate-echo" | grep -E -q '\((RPATH|RUNPATH)\).*\$ORIGIN'; then
        echo "NOTE: installed wsgate-echo has no \$ORIGIN RUNPATH: outside the loader's default"
        echo "      paths it needs LD_LIBRARY_PATH to find libwsgate.so.0"
    fi
fi

echo "install_consumer ok"
