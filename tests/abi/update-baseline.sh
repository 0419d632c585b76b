#!/usr/bin/env bash
# Refreshes the ABI baseline tests/abi/wsgate.abi on purpose (see README.md
# beside this script for when): dumps the ABI of a libwsgate.so built from
# this tree and shows what changed against the old baseline before writing.
#
# usage: tests/abi/update-baseline.sh [BUILD_DIR]
#   BUILD_DIR: an existing Debug or RelWithDebInfo build of this tree (its
#   libwsgate.so is rebuilt first). Without it, the library alone is built
#   in a temporary directory (RelWithDebInfo, the baseline's reference).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source=abi_common.sh
. "$here/abi_common.sh"
abi_require_tools

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-abi-update.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ $# -ge 1 ]; then
    build=$(cd "$1" && pwd)
else
    build=$tmp/build
    echo "== building libwsgate (RelWithDebInfo) in $build"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWSGATE_BUILD_TESTS=OFF \
        -DWSGATE_BUILD_EXAMPLES=OFF > "$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
fi
cmake --build "$build" --target wsgate -j"$(nproc)" > "$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
lib=$(find "$build" -maxdepth 1 -name 'libwsgate.so.*.*' -type f | head -n 1)
[ -n "$lib" ] || { echo "no libwsgate.so.X.Y.Z in $build" >&2; exit 1; }

abi_dump "$src" "$lib" "$tmp/new.abi"
baseline=$here/wsgate.abi
if [ -f "$baseline" ]; then
    echo "== changes against the old baseline (what you are accepting):"
    abidiff "$baseline" "$tmp/new.abi" || true
fi
cp "$tmp/new.abi" "$baseline"
echo "== wrote $baseline ($(abi_soname "$baseline"), $(grep -c '<elf-symbol ' "$baseline") functions)"
echo "   commit it with the change that needs it, and say why in the message"
