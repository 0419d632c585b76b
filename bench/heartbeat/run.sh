#!/usr/bin/env bash
# Heartbeat cost: hold N idle connections that answer pings every second and
# measure the server (wsgate-echo) alone: CPU per 10,000 connections, the
# wheel tick at the 99th percentile (from the server's heartbeat_stats
# events), and RSS per connection. Server pinned to CPU 0, load to CPU 1.
# Loopback only; bounded in time.
#
#   bench/heartbeat/run.sh BUILD_DIR [N ...]     (default N: 10000 19000)
#   EXTRA="--set tuning.event_loop=poll" bench/heartbeat/run.sh ...   (more server options)
#
# Prints one JSON line per N. Needs a Release build for honest figures:
#   cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release && cmake --build build/release
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR [N ...]}
shift
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 19000)
echo_bin=$build/examples/wsgate-echo
bench_bin=$build/bench/wsgate-bench
hold=${HOLD_SECONDS:-40}
window=${WINDOW_SECONDS:-20}
tmp=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
# taskset execs the program, so $! is the program itself (a shell function
# in the background would put a subshell in between).
pin0=(); pin1=()
if command -v taskset >/dev/null; then pin0=(taskset -c 0); pin1=(taskset -c 1); fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

for n in "${counts[@]}"; do
  "${pin0[@]}" "$echo_bin" --host 127.0.0.1 --port 0 \
    --set heartbeat.ping_interval_ms=1000 --set heartbeat.pong_wait_ms=3000 \
    --set limits.max_connections=$((n + 100)) --set log.level=debug ${EXTRA:-} \
    >"$tmp/out" 2>"$tmp/err" &
  server=$!
  for _ in $(seq 100); do grep -q listening "$tmp/out" && break; sleep 0.05; done
  port=$(sed -nE 's/.*:([0-9]+)\/.*/\1/p' "$tmp/out")
  sleep 1
  rss0=$(rss_kib "$server")
  "${pin1[@]}" "$bench_bin" connect --url "ws://127.0.0.1:$port/" --connections "$n" \
    --duration "$hold" --rate 5000 >"$tmp/bench.json" 2>"$tmp/bench.err" &
  load=$!
  # Wait until every connection is open, let the pings settle, then measure.
  for _ in $(seq 600); do
    opened=$(grep -c '"event":"open"' "$tmp/err" || true)
    [ "$opened" -ge "$n" ] && break
    sleep 0.1
  done
  sleep 3
  c0=$(cpu_ticks "$server"); t0=$(date +%s.%N)
  mark=$(wc -l <"$tmp/err")
  sleep "$window"
  c1=$(cpu_ticks "$server"); t1=$(date +%s.%N)
  rss1=$(rss_kib "$server")
  wait "$load" || true
  kill -INT "$server"; wait "$server" || true; server=""
  # Tick percentiles from the heartbeat_stats windows inside the measured span.
  stats=$(tail -n +"$mark" "$tmp/err" | grep '"event":"heartbeat_stats"' | grep -v '"connections":0' || true)
  /usr/bin/python3 - "$n" "$c0" "$c1" "$t0" "$t1" "$ticks" "$rss0" "$rss1" "$opened" "$tmp/bench.json" <<PY
import json, sys
n, c0, c1 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0, t1, hz = float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
rss0, rss1, opened = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
try:
    bench = json.load(open(sys.argv[10]))
except Exception:
    bench = {}
stats = [json.loads(l) for l in """$stats""".splitlines() if l.strip()]
cpu_s = (c1 - c0) / hz
wall = t1 - t0
pings = n * wall  # one ping per connection per second
out = {
    "connections": n, "opened": opened, "survived": bench.get("survived"),
    "window_s": round(wall, 1),
    "server_cpu_pct": round(100 * cpu_s / wall, 2),
    "server_cpu_pct_per_10k": round(100 * cpu_s / wall * 10000 / n, 2),
    "cpu_us_per_ping": round(cpu_s * 1e6 / pings, 2),
    "tick_p99_us_le": max((s["tick_p99_us_le"] for s in stats), default=None),
    "tick_p50_us_le": max((s["tick_p50_us_le"] for s in stats), default=None),
    "tick_max_us": max((s["tick_max_us"] for s in stats), default=None),
    "timers_fired_per_s": round(sum(s["timers_fired"] for s in stats) / max(1, sum(s["window_ms"] for s in stats) / 1000), 1),
    "rss_kib_idle_server": rss0, "rss_kib_held": rss1,
    "rss_kib_per_conn": round((rss1 - rss0) / n, 2),
}
print(json.dumps(out))
PY
done
