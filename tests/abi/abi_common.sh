# Sourced by check_abi.sh and update-baseline.sh: the one way wsgate's ABI
# is dumped, so the stored baseline and the check always read a library alike.
#
# abidw reads the DWARF of the exported functions only
# (--exported-interfaces-only: about a second, where the whole library's
# debug info takes 20 s and 10 MB of XML), keeps the types the public
# headers define (--headers-dir, --drop-private-types: the C++ core behind
# the opaque handles is not ABI), and leaves out what differs between
# machines or builds without being ABI (locations, paths, DT_NEEDED).
# The result is the same for Debug and RelWithDebInfo builds (both have -g).

abi_require_tools() {
    local t
    for t in abidw abidiff readelf; do
        if ! command -v "$t" > /dev/null 2>&1; then
            echo "FAIL: $t not found: install abigail-tools and binutils (scripts/deps.sh does)" >&2
            return 1
        fi
    done
}

# abi_dump SOURCE_DIR LIBRARY OUT: write LIBRARY's ABI as XML to OUT.
abi_dump() {
    local src=$1 lib=$2 out=$3
    if ! readelf -S --wide "$lib" 2> /dev/null | grep -q '\.debug_info'; then
        echo "FAIL: $lib has no DWARF debug info, and the ABI check reads the types from it:" >&2
        echo "      build with CMAKE_BUILD_TYPE=Debug or RelWithDebInfo (CI's plain build is Debug)" >&2
        return 1
    fi
    abidw --exported-interfaces-only --headers-dir "$src/include/wsgate" --drop-private-types \
        --no-corpus-path --no-comp-dir-path --no-show-locs --no-elf-needed --type-id-style hash \
        "$lib" > "$out.tmp" || { echo "FAIL: abidw failed on $lib" >&2; return 1; }
    # The one absolute path left (each translation unit's source file): made
    # relative to the source tree, so the baseline is the same on any machine.
    sed "s#path='$src/#path='#" "$out.tmp" > "$out" && rm -f "$out.tmp"
}

# abi_soname FILE: the soname attribute of an abidw XML file.
abi_soname() {
    sed -n "1,5s/^<abi-corpus[^>]* soname='\([^']*\)'.*/\1/p" "$1" | head -n 1
}
