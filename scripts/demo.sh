#!/usr/bin/env bash
# Installs what is missing, builds wsgate and runs the demo server
# (wsgate-echo) on embedded defaults: ws://0.0.0.0:8080/, no Redis, no TLS.
# Extra arguments go to wsgate-echo, e.g. --port 9000 or --set log.level=debug.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --build-only
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DWSGATE_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
exec build/release/examples/wsgate-echo "$@"
