#!/usr/bin/env bash
# The ABI check: compares the stored baseline (tests/abi/wsgate.abi) with a
# built libwsgate.so through abidiff, and fails when a function or type of
# the baseline was removed or changed (a removed or changed function, a
# changed parameter or return type, an enum value renumbered or removed)
# while the SONAME stayed the same. Additions (new functions, new enum
# values) pass. A changed SONAME passes, with a reminder to refresh the
# baseline. tests/abi/README.md says how and when to refresh it.
#
# usage: check_abi.sh SOURCE_DIR BASELINE CURRENT
#   CURRENT is the built shared library, or an ABI XML written by abidw
#   (check_abi_selftest.sh feeds it doctored copies).
# Exit: 0 compatible, 1 incompatible (or no debug info), 2 usage or tool error.
set -uo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 SOURCE_DIR BASELINE CURRENT" >&2
    exit 2
fi
src=$(cd "$1" && pwd) || exit 2
baseline=$2
current=$3
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=abi_common.sh
. "$here/abi_common.sh"
abi_require_tools || exit 2
for f in "$baseline" "$current"; do
    [ -r "$f" ] || { echo "check_abi: cannot read $f" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-abi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP INT TERM

# A library is dumped first; an XML file is taken as it is.
if head -c 4 "$current" | grep -q 'ELF'; then
    abi_dump "$src" "$current" "$tmp/current.abi" || exit 1
    current_abi=$tmp/current.abi
else
    current_abi=$current
fi

old_soname=$(abi_soname "$baseline")
new_soname=$(abi_soname "$current_abi")
[ -n "$old_soname" ] || { echo "check_abi: no soname in $baseline (not an abidw file?)" >&2; exit 2; }

# --no-added-syms: additions are compatible; what is left to report is
# removed or changed. abidiff's exit code is a bit field: 1 error, 2 usage,
# 4 ABI change, 8 incompatible change (removed function...). 4 alone covers
# changed types (an enum value) as well: any of 4 and 8 fails.
abidiff --no-added-syms "$baseline" "$current_abi" > "$tmp/report" 2>&1
rc=$?
if [ $((rc & 3)) -ne 0 ]; then
    cat "$tmp/report"
    echo "check_abi: abidiff failed (exit code $rc) comparing $baseline and $current" >&2
    exit 2
fi
if [ "$rc" -eq 0 ]; then
    # The additions, for the record (one more read of two small files).
    abidiff "$baseline" "$current_abi" > "$tmp/full" 2>&1
    added=$(sed -n 's/^Functions changes summary: .* \([0-9][0-9]*\) Added.*/\1/p' "$tmp/full" | head -n 1)
    echo "abi_check ok: every function and enum value of the baseline ($old_soname) is still there" \
        "and unchanged; ${added:-0} function(s) added since the baseline"
    exit 0
fi

sed 's/^/    /' "$tmp/report"
if [ "$old_soname" != "$new_soname" ]; then
    echo "abi_check ok: the SONAME changed ($old_soname -> $new_soname), so the incompatible" \
        "changes above are allowed. Refresh the baseline now: tests/abi/update-baseline.sh"
    exit 0
fi
bits=""
[ $((rc & 4)) -ne 0 ] && bits="$bits ABI_CHANGE"
[ $((rc & 8)) -ne 0 ] && bits="$bits ABI_INCOMPATIBLE_CHANGE"
echo "FAIL: the ABI of $(basename "$current") breaks the baseline $(basename "$baseline")" \
    "(abidiff:$bits): see the removed or changed functions and types above."
echo "      While the SONAME stays $old_soname, exported functions, their signatures and enum"
echo "      values may only be added, never removed, renumbered or changed. Restore them; or, for a"
echo "      deliberate break, raise WSGATE_ABI_VERSION in CMakeLists.txt (the SONAME), or before 1.0"
echo "      list the change in wsgate.h's version policy, and refresh the baseline in the same"
echo "      commit: tests/abi/update-baseline.sh (tests/abi/README.md)."
exit 1
