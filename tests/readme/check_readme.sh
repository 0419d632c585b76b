#!/usr/bin/env bash
# Keeps README.md true: its option table equals the core's table, every
# option it sets on a command line exists, and its C quick-start example
# compiles and links against the library as written.
# The log-event, close-cause and status tables equal their lists.
# usage: check_readme.sh README OPTIONS_MD_BINARY INCLUDE_DIR LIB_DIR LISTS_MD_BINARY
set -euo pipefail
readme=$1 gen=$2 inc=$3 libdir=$4 lists=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$gen" > "$tmp/table.md"
sed -n '/<!-- options-table:begin -->/,/<!-- options-table:end -->/p' "$readme" | sed '1d;$d' > "$tmp/readme.md"
if ! diff -u "$tmp/readme.md" "$tmp/table.md"; then
  echo "README.md option table is stale: run scripts/update-readme.sh" >&2
  exit 1
fi

for table in events causes statuses; do
  "$lists" "$table" > "$tmp/$table.want"
  sed -n "/<!-- $table-table:begin -->/,/<!-- $table-table:end -->/p" "$readme" | sed '1d;$d' > "$tmp/$table.have"
  [ -s "$tmp/$table.have" ] || { echo "README.md has no $table table (<!-- $table-table:begin -->)" >&2; exit 1; }
  if ! diff -u "$tmp/$table.have" "$tmp/$table.want"; then
    echo "README.md $table table is stale: run scripts/update-readme.sh" >&2
    exit 1
  fi
done

# Every option the README sets on a command line (--set key=value) exists.
grep -o -- '--set [a-z0-9_.]*=' "$readme" | sed 's/^--set //; s/=$//' | sort -u > "$tmp/used.txt"
sed -n 's/^| `\([a-z0-9_.]*\)` |.*/\1/p' "$tmp/table.md" | sort -u > "$tmp/known.txt"
[ -s "$tmp/used.txt" ] && [ -s "$tmp/known.txt" ] || { echo "no --set lines or no option table found" >&2; exit 1; }
unknown=$(comm -23 "$tmp/used.txt" "$tmp/known.txt")
[ -z "$unknown" ] || { echo "README.md sets options that do not exist: $unknown" >&2; exit 1; }

sed -n '/<!-- example:quickstart -->/,/^```$/p' "$readme" | sed '1,2d;$d' > "$tmp/quickstart.c"
lines=$(grep -cv '^\s*$' "$tmp/quickstart.c")
[ "$lines" -gt 0 ] || { echo "README.md quick-start example not found" >&2; exit 1; }
san=()
grep -q 'WSGATE_SANITIZE:BOOL=ON' "$libdir/CMakeCache.txt" 2>/dev/null && san=(-fsanitize=address,undefined)
cc -std=c99 -Wall -Wextra -Werror "${san[@]}" -I"$inc" "$tmp/quickstart.c" -L"$libdir" -lwsgate \
   -Wl,-rpath,"$libdir" -o "$tmp/quickstart"
echo "README ok: option table current, quick-start example ($lines lines) compiles"
