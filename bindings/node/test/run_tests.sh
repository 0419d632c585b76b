#!/usr/bin/env bash
# The Node.js binding's tests against the INSTALLED library: installs BUILD
# into a temporary prefix, checks that the installed addon finds the
# installed libwsgate.so.0 by itself (RUNPATH $ORIGIN/../..), then runs
# `node --test` on bindings/node/test/ with NODE_PATH naming the installed
# package. Node 20's WebSocket client (--experimental-websocket) is the client.
#
# usage: run_tests.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SOURCE_DIR BUILD_DIR" >&2; exit 2; }
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
node=${NODE:-node}
cmake=$(sed -n 's/^CMAKE_COMMAND:[A-Za-z_]*=//p' "$build/CMakeCache.txt" | head -n 1)
libdir_rel=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Za-z_]*=//p' "$build/CMakeCache.txt" | head -n 1)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-node.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
if ! "${cmake:-cmake}" --install "$build" --prefix "$prefix" > "$tmp/install.log" 2>&1; then
    cat "$tmp/install.log" >&2
    echo "FAIL: cmake --install failed" >&2
    exit 1
fi
libdir=$prefix/${libdir_rel:-lib}
pkg=$libdir/node_modules/wsgate
for f in index.js index.d.ts package.json README.md wsgate.node; do
    [ -e "$pkg/$f" ] || { echo "FAIL: the install has no ${pkg#"$prefix"/}/$f" >&2; exit 1; }
done
lib=$(readlink -f "$libdir/libwsgate.so.0")
resolved=$(env -u LD_LIBRARY_PATH ldd "$pkg/wsgate.node" | sed -n 's/.*libwsgate\.so\.0 => \([^ ]*\).*/\1/p')
[ "$(readlink -f "$resolved")" = "$lib" ] ||
    { echo "FAIL: the installed wsgate.node loads '$resolved', not $lib" >&2; exit 1; }
echo "installed addon $pkg/wsgate.node loads $lib"

unset WSGATE_NODE_ADDON LD_LIBRARY_PATH
export NODE_PATH=$libdir/node_modules WSGATE_EXPECT_LIB=$lib WSGATE_SOURCE_DIR=$src
# Not exec: the EXIT trap removes the temporary prefix afterwards.
"$node" --experimental-websocket --test --test-reporter=spec "$src"/bindings/node/test/*.test.js
