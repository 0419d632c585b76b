#!/bin/sh
# Checks that three lists of the C ABI agree:
#   1. the ledger tests/abi/symbols.txt ("name version_added", sorted),
#   2. the functions declared WSG_API in include/wsgate/wsgate.h,
#   3. the text symbols the shared library exports (nm -D --defined-only).
# Also: the library exports nothing but wsg_* (and its version node), every
# export carries a version node, and no ledger entry is newer than the header.
#
# usage: check_symbols.sh SOURCE_DIR LIBRARY_FILE
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 SOURCE_DIR LIBRARY_FILE" >&2
    exit 2
fi
src=$1
lib=$2
header=$src/include/wsgate/wsgate.h
ledger=$src/tests/abi/symbols.txt
export LC_ALL=C

for f in "$header" "$ledger" "$lib"; do
    if [ ! -r "$f" ]; then
        echo "check_symbols: cannot read $f" >&2
        exit 2
    fi
done
NM=${NM:-nm}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsg-symbols.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

status=0
fail() {
    echo "FAIL: $*"
    status=1
}

# ---- 1. the ledger: skip comments and blank lines; two fields; sorted; unique.
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$ledger" > "$tmp/ledger.raw" || true
if ! awk 'NF != 2 || $2 !~ /^[0-9]+\.[0-9]+\.[0-9]+$/ || $1 !~ /^[A-Za-z_][A-Za-z0-9_]*$/ {
              printf "  line %d: %s\n", NR, $0; bad = 1 }
          END { exit bad }' "$tmp/ledger.raw" > "$tmp/ledger.bad"; then
    fail "$ledger: malformed lines (want \"name MAJOR.MINOR.PATCH\"):"
    cat "$tmp/ledger.bad"
fi
cut -d' ' -f1 "$tmp/ledger.raw" | awk '{print $1}' > "$tmp/ledger.names"
if ! sort -c "$tmp/ledger.names" 2> "$tmp/sort.err"; then
    fail "$ledger is not sorted (LC_ALL=C): $(cat "$tmp/sort.err")"
fi
dups=$(sort "$tmp/ledger.names" | uniq -d)
if [ -n "$dups" ]; then
    fail "$ledger lists these more than once: $dups"
fi
sort -u "$tmp/ledger.names" > "$tmp/ledger.txt"

# No ledger entry may claim a release newer than the header's version.
hv=$(awk '$1 == "#define" && $2 ~ /^WSG_VERSION_(MAJOR|MINOR|PATCH)$/ { v[$2] = $3 }
          END { printf "%d %d %d", v["WSG_VERSION_MAJOR"], v["WSG_VERSION_MINOR"], v["WSG_VERSION_PATCH"] }' "$header")
awk -v hv="$hv" 'BEGIN { split(hv, h, " ") }
     { split($2, v, ".")
       if (v[1] + 0 > h[1] + 0 || (v[1] == h[1] && (v[2] + 0 > h[2] + 0 ||
           (v[2] == h[2] && v[3] + 0 > h[3] + 0))))
           printf "  %s %s (header is %s.%s.%s)\n", $1, $2, h[1], h[2], h[3] }' \
    "$tmp/ledger.raw" > "$tmp/newer"
if [ -s "$tmp/newer" ]; then
    fail "ledger entries newer than the header version:"
    cat "$tmp/newer"
fi

# ---- 2. the header: join continued lines, drop comments and preprocessor
# lines, then take the identifier before the first '(' of each WSG_API
# declaration.
sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' "$header" |
    tr '\n' '\001' |
    sed -E 's#/\*([^*]|\*+[^*/])*\*+/# #g' |
    tr '\001' '\n' |
    sed -e 's#//.*$##' -e '/^[[:space:]]*#/d' |
    tr '\n' ' ' |
    grep -oE '(^|[^A-Za-z0-9_])WSG_API[^A-Za-z0-9_][^;{}()]*\(' |
    sed -E 's/[[:space:]]*\($//; s/.*[^A-Za-z0-9_]//' |
    sort > "$tmp/header.all" || true
sort -u "$tmp/header.all" > "$tmp/header.txt"
dups=$(uniq -d "$tmp/header.all")
if [ -n "$dups" ]; then
    fail "$header declares these more than once: $dups"
fi
if [ ! -s "$tmp/header.txt" ]; then
    fail "found no WSG_API declarations in $header (parser broken?)"
fi

# ---- 3. the library's dynamic symbol table.
if ! "$NM" -D --defined-only "$lib" > "$tmp/nm.out" 2> "$tmp/nm.err"; then
    echo "check_symbols: $NM -D failed on $lib:" >&2
    cat "$tmp/nm.err" >&2
    exit 2
fi
# Lines look like "ADDR T name@@WSGATE_0" or "0000 A WSGATE_0".
awk 'NF >= 3 { print $2, $3 } NF == 2 { print $1, $2 }' "$tmp/nm.out" > "$tmp/nm.all"
# Version nodes (absolute symbols named like the map's nodes) are not functions.
grep -v -E '^A WSGATE_[0-9A-Za-z_.]*$' "$tmp/nm.all" > "$tmp/nm.exports" || true
awk '{ n = $2; sub(/@.*/, "", n); if (n !~ /^wsg_/) print "  " $0 }' "$tmp/nm.exports" > "$tmp/foreign"
if [ -s "$tmp/foreign" ]; then
    fail "$lib exports symbols outside the wsg_ namespace (version script or visibility broken):"
    cat "$tmp/foreign"
fi
awk '$1 != "T" { print "  " $0 }' "$tmp/nm.exports" > "$tmp/nontext"
if [ -s "$tmp/nontext" ]; then
    fail "$lib exports non-function symbols (the ABI has no public data):"
    cat "$tmp/nontext"
fi
awk '$1 == "T" && $2 !~ /@@?WSGATE_/ { print "  " $2 }' "$tmp/nm.exports" > "$tmp/unversioned"
if [ -s "$tmp/unversioned" ]; then
    fail "$lib exports functions without a WSGATE_* version node:"
    cat "$tmp/unversioned"
fi
awk '$1 == "T" { n = $2; sub(/@.*/, "", n); print n }' "$tmp/nm.exports" | sort -u > "$tmp/nm.txt"
if [ ! -s "$tmp/nm.txt" ]; then
    fail "$lib exports no functions at all"
fi

# ---- compare the three sets pairwise.
compare() { # name_a file_a name_b file_b
    comm -23 "$2" "$4" > "$tmp/only_a"
    comm -13 "$2" "$4" > "$tmp/only_b"
    if [ -s "$tmp/only_a" ] || [ -s "$tmp/only_b" ]; then
        fail "$1 and $3 differ:"
        sed "s/^/  only in $1: /" "$tmp/only_a"
        sed "s/^/  only in $3: /" "$tmp/only_b"
    fi
}
compare ledger "$tmp/ledger.txt" header "$tmp/header.txt"
compare header "$tmp/header.txt" "nm -D" "$tmp/nm.txt"
compare ledger "$tmp/ledger.txt" "nm -D" "$tmp/nm.txt"

if [ $status -ne 0 ]; then
    echo "ABI symbol check failed. Fix the header, lib/wsgate.map or $ledger so that all"
    echo "three agree (a new function needs a ledger line \"name version_added\")."
    exit 1
fi
echo "abi_symbols ok: $(wc -l < "$tmp/nm.txt") functions agree across ledger, header and nm -D"
