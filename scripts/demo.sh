#!/usr/bin/env bash
# Installs what is missing, builds wsgate and runs the demo server
# (wsgate-echo) on embedded defaults: ws://0.0.0.0:8080/, no Redis, no TLS.
# Extra arguments go to wsgate-echo, e.g. --port 9000 or --set log.level=debug.
# Ctrl-C (or SIGTERM) stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "demo: $*" >&2; }
log=build/demo-build.log
mkdir -p build

say "[1/3] checking the Debian packages it needs (installs what is missing; a minute on a fresh machine)"
scripts/deps.sh --build-only

say "[2/3] building wsgate in build/release (about a minute the first time; log: $log)"
if ! { cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DWSGATE_BUILD_TESTS=OFF &&
       cmake --build build/release -j"$(nproc)" --target wsgate-echo; } > "$log" 2>&1; then
  tail -n 40 "$log" >&2
  say "the build failed; the whole log is in $log"
  exit 1
fi

say "[3/3] starting the echo server; when it prints its address, talk to it from another terminal"
say "      with that port, e.g.: /usr/bin/python3 -m websockets ws://localhost:8080/"
exec build/release/examples/wsgate-echo "$@"
