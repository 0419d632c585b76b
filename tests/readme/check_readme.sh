#!/usr/bin/env bash
# Keeps README.md true: its option table equals the core's table, every
# option it sets on a command line exists, and its C quick-start example
# compiles and links against the library as written, runs, and stops
# gracefully on SIGTERM and SIGINT. The log-event, close-cause, status,
# queue-policy and metric tables equal their lists.
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

for table in events causes statuses policies codes advice metrics; do
  "$lists" "$table" > "$tmp/$table.want"
  sed -n "/<!-- $table-table:begin -->/,/<!-- $table-table:end -->/p" "$readme" | sed '1d;$d' > "$tmp/$table.have"
  [ -s "$tmp/$table.have" ] || { echo "README.md has no $table table (<!-- $table-table:begin -->)" >&2; exit 1; }
  if ! diff -u "$tmp/$table.have" "$tmp/$table.want"; then
    echo "README.md $table table is stale: run scripts/update-readme.sh" >&2
    exit 1
  fi
done

# The chat demo page's copy of the close-code contract equals the list.
page="$(dirname "$readme")/examples/chat/index.html"
"$lists" advice-js > "$tmp/advice-js.want"
sed -n '/\/\/ close-advice:begin/,/\/\/ close-advice:end/p' "$page" | sed '1d;$d' > "$tmp/advice-js.have"
[ -s "$tmp/advice-js.have" ] || { echo "$page has no close-advice block" >&2; exit 1; }
if ! diff -u "$tmp/advice-js.have" "$tmp/advice-js.want"; then
  echo "$page: the close-advice block is stale: run scripts/update-readme.sh" >&2
  exit 1
fi

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

# It runs and stops gracefully on SIGTERM and SIGINT (exit 0, the "stop"
# event logged). Built once more with listen.port=0 so it never collides with
# a real port 9000; its "listen" event says when it is ready.
grep -q '"listen.port=9000"' "$tmp/quickstart.c" || { echo "quick start no longer sets listen.port=9000: update this test" >&2; exit 1; }
sed 's/"listen.port=9000"/"listen.port=0"/' "$tmp/quickstart.c" > "$tmp/quickstart0.c"
cc -std=c99 -Wall -Wextra -Werror "${san[@]}" -I"$inc" "$tmp/quickstart0.c" -L"$libdir" -lwsgate \
   -Wl,-rpath,"$libdir" -o "$tmp/quickstart0"
for sig in TERM INT; do
  "$tmp/quickstart0" 2> "$tmp/run.log" &
  pid=$!
  for _ in $(seq 100); do grep -q '"event":"listen"' "$tmp/run.log" && break; sleep 0.05; done
  grep -q '"event":"listen"' "$tmp/run.log" || { kill -KILL $pid; cat "$tmp/run.log" >&2; echo "quick start did not listen" >&2; exit 1; }
  kill -$sig $pid
  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
  if kill -0 $pid 2>/dev/null; then kill -KILL $pid; echo "quick start ignored SIG$sig for 5 s" >&2; exit 1; fi
  rc=0; wait $pid || rc=$?
  [ $rc -eq 0 ] || { cat "$tmp/run.log" >&2; echo "quick start exited $rc on SIG$sig, want 0" >&2; exit 1; }
  grep -q '"event":"stop"' "$tmp/run.log" || { cat "$tmp/run.log" >&2; echo "quick start logged no stop on SIG$sig" >&2; exit 1; }
done
echo "README ok: option table current, quick-start example ($lines lines) compiles, runs and stops on SIGTERM and SIGINT"
