#!/usr/bin/env bash
# Installs what is missing, builds wsgate and runs the demo: the chat server
# (wsgate-chat) on embedded defaults, http://localhost:8080/ (page and
# WebSocket on one port, all interfaces), no Redis, no TLS. It prints the URL
# to open in a browser. Extra arguments go to wsgate-chat, e.g. --port 9000,
# --host 127.0.0.1 or --set log.level=debug. Ctrl-C (or SIGTERM) stops it
# gracefully. The echo server (wsgate-echo) stays an example: see README.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "demo: $*" >&2; }
log=build/demo-build.log
mkdir -p build

say "[1/3] checking the Debian packages it needs (installs what is missing; a minute on a fresh machine)"
scripts/deps.sh --build-only

say "[2/3] building wsgate in build/release (about a minute the first time; log: $log)"
if ! { cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DWSGATE_BUILD_TESTS=OFF &&
       cmake --build build/release -j"$(nproc)" --target wsgate-chat; } > "$log" 2>&1; then
  tail -n 40 "$log" >&2
  say "the build failed; the whole log is in $log"
  exit 1
fi

say "[3/3] starting the chat server: open the URL it prints in two browser tabs, pick a room, talk"
say "      (?room=NAME&name=YOU in the URL; /who lists the room, /msg USER text writes to one user)"
exec build/release/examples/wsgate-chat "$@"
