#!/usr/bin/env bash
# Proves that check_abi.sh can fail, on real data: the ABI of the built
# library (abidw) is the baseline, and doctored copies of it play the new
# library. The check must
#   fail on: a removed function, a renumbered enum value, a removed enum
#            value, a changed function signature, a library without DWARF;
#   pass on: the same ABI, an added function, an added enum value, and a
#            removal together with a new SONAME.
# Each doctored copy is checked to differ from the original first, so a
# change in abidw's output format cannot make a case pass by doing nothing.
#
# usage: check_abi_selftest.sh SOURCE_DIR LIBRARY
set -uo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR LIBRARY" >&2
    exit 2
fi
src=$(cd "$1" && pwd) || exit 2
lib=$2
here=$(cd "$(dirname "$0")" && pwd)
check=$here/check_abi.sh
# shellcheck source=abi_common.sh
. "$here/abi_common.sh"
abi_require_tools || exit 2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-abi-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP INT TERM
failures=0
bad() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

abi_dump "$src" "$lib" "$tmp/cur.abi" || exit 1
cur=$tmp/cur.abi

# doctor NAME SED_SCRIPT: $tmp/NAME.abi = cur.abi edited; must differ.
doctor() {
    sed "$2" "$cur" > "$tmp/$1.abi"
    if cmp -s "$cur" "$tmp/$1.abi"; then
        bad "doctoring '$1' changed nothing (abidw's output format changed?): fix this test"
        return 1
    fi
}

# expect NAME WANT_RC BASELINE CURRENT [PATTERN...]: run the check; its exit
# code must be WANT_RC and its output must contain every PATTERN.
expect() {
    local name=$1 want=$2 base=$3 new=$4 rc p
    shift 4
    "$check" "$src" "$base" "$new" > "$tmp/$name.out" 2>&1
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        bad "$name: check_abi.sh exited $rc, want $want; its output:"
        sed 's/^/    /' "$tmp/$name.out"
        return
    fi
    for p in "$@"; do
        if ! grep -q -- "$p" "$tmp/$name.out"; then
            bad "$name: output lacks '$p':"
            sed 's/^/    /' "$tmp/$name.out"
            return
        fi
    done
    echo "ok: $name (exit $rc)"
}

# A function gone: its symbol and its declaration.
doctor removed "/<elf-symbol name='wsg_conn_subscribe'/d; /<function-decl name='wsg_conn_subscribe'/,/<\/function-decl>/d" &&
    expect removed_function 1 "$cur" "$tmp/removed.abi" "wsg_conn_subscribe" "1 Removed" "FAIL: the ABI"
# An enum value renumbered.
doctor renumbered "s/<enumerator name='WSG_CAUSE_DRAIN' value='16'/<enumerator name='WSG_CAUSE_DRAIN' value='17'/" &&
    expect renumbered_enum 1 "$cur" "$tmp/renumbered.abi" "WSG_CAUSE_DRAIN" "FAIL: the ABI"
# An enum value removed.
doctor enum_removed "/<enumerator name='WSG_QUEUE_CONFLATE'/d" &&
    expect removed_enum_value 1 "$cur" "$tmp/enum_removed.abi" "WSG_QUEUE_CONFLATE" "FAIL: the ABI"
# A signature changed: wsg_conn_close loses its last parameter (reason).
doctor signature "/<function-decl name='wsg_conn_close'/,/<\/function-decl>/{/name='reason'/d}" &&
    expect changed_signature 1 "$cur" "$tmp/signature.abi" "wsg_conn_close" "FAIL: the ABI"
# Additions pass: the new library has a function (or enum value) the baseline lacks.
expect same_abi 0 "$cur" "$cur" "abi_check ok"
[ -f "$tmp/removed.abi" ] &&
    expect added_function 0 "$tmp/removed.abi" "$cur" "abi_check ok" "1 function(s) added"
[ -f "$tmp/enum_removed.abi" ] &&
    expect added_enum_value 0 "$tmp/enum_removed.abi" "$cur" "abi_check ok"
# A removal with a new SONAME passes (a new ABI major), with a reminder.
doctor soname_bump "1s/soname='libwsgate\.so\.0'/soname='libwsgate.so.1'/; /<elf-symbol name='wsg_conn_subscribe'/d; /<function-decl name='wsg_conn_subscribe'/,/<\/function-decl>/d" &&
    expect soname_bump 0 "$cur" "$tmp/soname_bump.abi" "SONAME changed" "update-baseline.sh"
# A library without debug info cannot be checked: a clear failure, not a pass.
if objcopy --strip-debug "$lib" "$tmp/libwsgate-stripped.so" 2> "$tmp/objcopy.err"; then
    expect no_debug_info 1 "$cur" "$tmp/libwsgate-stripped.so" "no DWARF debug info"
else
    bad "objcopy --strip-debug failed: $(cat "$tmp/objcopy.err")"
fi

if [ "$failures" -ne 0 ]; then
    echo "abi_check_selftest: $failures case(s) failed"
    exit 1
fi
echo "abi_check_selftest ok: the check fails on removals and changes, passes on additions"
