#!/usr/bin/env python3
"""Echo through the Node.js binding against the npm `ws` package.

Same machine, same load generator (wsgate-bench echo), same method as
bench/run_matrix.py: each server started fresh per run and pinned to CPU 0,
wsgate-bench on CPU 1, servers interleaved within each repetition, medians
with min..max across repetitions. The figure that matters is messages per
server CPU second (1 / wsgate-bench's server cpu_us_per_message, read from
/proc/PID/task/*/schedstat over the measured window: every thread of the
server process, Node's and wsgate's alike).

Servers:
  wsgate-node     bench/node/echo_wsgate.js: require('wsgate'), installed from
                  BUILD into a temporary prefix (cmake --install)
  ws              bench/node/echo_ws.js with WS_NO_BUFFER_UTIL=1 (ws' own JS masking)
  ws+bufferutil   the same with ws' optional native bufferutil
  wsgate-c        BUILD/bench/wsgate-bench-server (the C ABI, no JavaScript): the floor

`ws` and bufferutil come from the npm registry, pinned by bench/node/package-lock.json,
installed with npm ci into build/bench-node (only when the lock changed).

usage: bench/node/run.py --build-dir BUILD [--reps 3] [--duration 5] [--cases w16,w1]
Prints a Markdown section for bench/RESULTS.md on stdout; progress on stderr.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CASES = {
    "w16": ("echo W=16 S=64, 100 connections", ["--connections", "100", "--window", "16", "--size", "64"]),
    "w1": ("echo W=1 S=64, 100 connections", ["--connections", "100", "--window", "1", "--size", "64"]),
    "w16k": ("echo W=16 S=4096, 100 connections", ["--connections", "100", "--window", "16", "--size", "4096"]),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def install_ws():
    dest = os.path.join(ROOT, "build", "bench-node")
    lock = os.path.join(HERE, "package-lock.json")
    have = os.path.join(dest, "package-lock.json")
    if not (os.path.exists(have) and open(have).read() == open(lock).read()
            and os.path.exists(os.path.join(dest, "node_modules", "ws", "package.json"))):
        print("installing ws into build/bench-node (npm ci)", file=sys.stderr)
        os.makedirs(dest, exist_ok=True)
        shutil.copy(os.path.join(HERE, "package.json"), dest)
        shutil.copy(lock, dest)
        sh(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dest)
    return os.path.join(dest, "node_modules")


def libdir_of(build):
    for line in open(os.path.join(build, "CMakeCache.txt")):
        if line.startswith("CMAKE_INSTALL_LIBDIR:"):
            return line.split("=", 1)[1].strip()
    return "lib"


def run_one(server, env, bench, case_args, duration, pin):
    pin_s = ["taskset", "-c", "0"] if pin else []
    pin_b = ["taskset", "-c", "1"] if pin else []
    proc = subprocess.Popen(pin_s + server, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"{server} did not start: {line!r} {proc.stderr.read()[-500:]}")
    url = line.split()[-1]
    argv = [bench, "echo", "--url", url, *case_args, "--duration", str(duration), "--warmup", "1",
            "--server-pid", str(proc.pid), "--quiet"]
    r = subprocess.run(pin_b + argv, capture_output=True, text=True, timeout=duration + 120)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    if not r.stdout.strip().startswith("{"):
        raise RuntimeError(f"wsgate-bench failed: {r.stderr[-500:]}")
    out = json.loads(r.stdout)
    cmd = " ".join(pin_b + argv).replace(url, "ws://127.0.0.1:PORT/").replace(f"--server-pid {proc.pid}", "--server-pid PID")
    shown_env = [f"{k}={v}" for k, v in env.items() if k != "NODE_PATH"]
    return out, " ".join(shown_env + pin_s + server), cmd


def fmt_med(xs, digits=0):
    m = statistics.median(xs)
    f = (lambda v: f"{v:,.{digits}f}")
    return f"{f(m)} ({f(min(xs))}..{f(max(xs))})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--cases", default="w16,w1")
    ap.add_argument("--no-pin", action="store_true")
    args = ap.parse_args()
    build = os.path.abspath(args.build_dir)
    bench = os.path.join(build, "bench", "wsgate-bench")
    pin = not args.no_pin and shutil.which("taskset") and (os.cpu_count() or 1) >= 2
    node = shutil.which("node")
    ws_modules = install_ws()

    tmp = tempfile.mkdtemp(prefix="wsg-bench-node.")
    try:
        sh(["cmake", "--install", build, "--prefix", os.path.join(tmp, "prefix")], stdout=subprocess.DEVNULL)
        wsgate_modules = os.path.join(tmp, "prefix", libdir_of(build), "node_modules")
        servers = [
            ("wsgate-node", [node, os.path.join(HERE, "echo_wsgate.js")], {"NODE_PATH": wsgate_modules}),
            ("ws", [node, os.path.join(HERE, "echo_ws.js")], {"NODE_PATH": ws_modules, "WS_NO_BUFFER_UTIL": "1"}),
            ("ws+bufferutil", [node, os.path.join(HERE, "echo_ws.js")], {"NODE_PATH": ws_modules}),
            ("wsgate-c", [os.path.join(build, "bench", "wsgate-bench-server"), "--host", "127.0.0.1", "--port", "0"], {}),
        ]
        cases = [c for c in args.cases.split(",") if c]
        load_before = os.getloadavg()
        t0 = time.time()
        results = {c: {s[0]: [] for s in servers} for c in cases}
        commands = {}
        for rep in range(args.reps):
            for c in cases:
                for name, cmd, env in servers:
                    out, scmd, bcmd = run_one(cmd, env, bench, CASES[c][1], args.duration, pin)
                    srv = out.get("server", {})
                    row = {"mps": out["messages_per_s"], "cpu_us": srv.get("cpu_us_per_message"),
                           "cpu_pct": srv.get("cpu_percent_window"), "p50": out["rtt_us"]["p50"],
                           "p99": out["rtt_us"]["p99"], "errors": out.get("errors", 0), "lost": out.get("lost", 0)}
                    results[c][name].append(row)
                    commands.setdefault((c, name), (scmd, bcmd))
                    print(f"rep {rep + 1} {c} {name}: {row}", file=sys.stderr)
        load_after = os.getloadavg()
        minutes = (time.time() - t0) / 60
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    ws_version = json.load(open(os.path.join(ws_modules, "ws", "package.json")))["version"]
    bu_version = json.load(open(os.path.join(ws_modules, "bufferutil", "package.json")))["version"]
    p = print
    p(f"Run on {time.strftime('%Y-%m-%d %H:%M')} at commit `{commit}` in {minutes:.1f} minutes: Node {node_version}, "
      f"ws {ws_version}, bufferutil {bu_version}; {args.reps} repetitions of {args.duration:g} s (after a 1 s "
      f"warm-up), servers interleaved; "
      + ("server pinned to CPU 0, wsgate-bench to CPU 1" if pin else "no CPU pinning") + "; load average "
      f"(1/5/15 min) before {' '.join(f'{x:.2f}' for x in load_before)}, after "
      f"{' '.join(f'{x:.2f}' for x in load_after)}.")
    p()
    for c in cases:
        p(f"### {CASES[c][0]}")
        p()
        p("| server | messages/s | server CPU us/msg | messages per server CPU second | RTT p50 us | RTT p99 us | server CPU % | errors + lost |")
        p("|---|---|---|---|---|---|---|---|")
        meds = {}
        for name, _, _ in servers:
            rows = results[c][name]
            cpu = [r["cpu_us"] for r in rows]
            per_cpu_s = [1e6 / x for x in cpu]
            meds[name] = statistics.median(per_cpu_s)
            p(f"| {name} | {fmt_med([r['mps'] for r in rows])} | {fmt_med(cpu, 3)} | {fmt_med(per_cpu_s)} | "
              f"{fmt_med([r['p50'] for r in rows])} | {fmt_med([r['p99'] for r in rows])} | "
              f"{fmt_med([r['cpu_pct'] for r in rows])} | {sum(r['errors'] + r['lost'] for r in rows)} |")
        p()
        p(f"Messages per server CPU second, ratio of medians: wsgate-node / ws {meds['wsgate-node'] / meds['ws']:.2f}x, "
          f"wsgate-node / ws+bufferutil {meds['wsgate-node'] / meds['ws+bufferutil']:.2f}x, "
          f"wsgate-node / wsgate-c {meds['wsgate-node'] / meds['wsgate-c']:.2f}x.")
        p()
    p("Commands of the first repetition (`PORT` and `PID` stand for the server's port and process id; "
      "`NODE_PATH` names the installed package for wsgate-node and build/bench-node/node_modules for ws):")
    p()
    p("```sh")
    for c in cases:
        for name, _, _ in servers:
            scmd, bcmd = commands[(c, name)]
            p(f"# {CASES[c][0]} / {name}")
            p(scmd.replace(ROOT + "/", "").replace(build, "BUILD") + " &")
            p(bcmd.replace(build, "BUILD"))
    p("```")


if __name__ == "__main__":
    main()
