#!/usr/bin/python3
"""The cluster benchmark of issue 12: publishes across wsgate instances through Redis.

    bench/cluster/run.py --build-dir BUILD [--instances 3] [--subscribers 1000]
                         [--topics 1000] [--rate 10000] [--duration 10] [--warmup 1]
                         [--history] [--out FILE.json] [--smoke]

Starts one redis-server (on a free 127.0.0.1 port, in a temporary directory),
then --instances wsgate-bench-server processes (A, B, C, ...) with
`--topics --set cluster.redis=127.0.0.1:PORT`, and runs wsgate-bench fanout:
one publisher on A sending --rate messages/s in turn to --topics topics, and
--subscribers subscribers spread over the instances (subscriber i on instance
i mod N, on topic i mod --topics). With the default 1,000 topics each
subscriber has its own, so a publish makes one delivery, two in three of them
on another instance than the publisher's; --topics 100 makes ten deliveries
per publish, on every instance. Each message carries its send time
(CLOCK_MONOTONIC) and each subscriber takes the time it arrives, on the same
machine and clock: the latency of a subscriber on B or C is the
cross-instance one (A -> Redis -> B).

Then the baseline: the same load on ONE instance without Redis (every
subscriber on A).

--history: every topic keeps a history (`--set cluster.history_topics=*`
on every instance, the baseline's included): each publish is one Lua script
in Redis (stream, offset, epoch) and every instance, A included, delivers
from its echo, so A's own subscribers also pay a Redis round trip.

Reports the delivered share (delivered / expected; lost and duplicates), the
latency per instance, and the CPU time of every wsgate process and of Redis
over the measured phase (from /proc, sampled by wsgate-bench at the phase's
ends) per publish and per delivery. Prints a JSON object (and writes it to
--out); exits 1 when a run delivered less than everything or failed.

Bounded: at most 20,000 subscribers, 100,000 messages/s, 60 s; every child is
started here and stopped by its pid (SIGTERM, then SIGKILL) whatever happens.
--smoke: 3 instances, 30 subscribers, 300 messages/s for 1 s (checks the
machinery, not the machine).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "packaging"))
from redis_server import RedisServer  # noqa: E402

children = []  # every process started here, stopped at the end


def stop(proc, grace=10):
    """Stops one child by its pid: SIGTERM, then SIGKILL. Returns its stdout's rest."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def stop_all():
    while children:
        stop(children.pop())


def redis_clients(redis):
    """Connected clients, from INFO clients (the asking one included)."""
    for line in redis.command("INFO", "clients").splitlines():
        if line.startswith("connected_clients:"):
            return int(line.split(":")[1])
    return -1


def start_redis():
    """redis-server on a free loopback port, no persistence (tests/packaging/redis_server.py)."""
    try:
        r = RedisServer().start()
    except RuntimeError as e:
        sys.exit(f"cluster bench: {e}")
    children.append(r.proc)
    return r


def start_instance(server, extra, tmp, name):
    """wsgate-bench-server --topics on an ephemeral port; returns (proc, base_url)."""
    argv = [server, "--host", "127.0.0.1", "--port", "0", "--topics",
            "--set", "limits.max_connections=30000", *extra]
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
    children.append(proc)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        sys.exit(f"cluster bench: instance {name} did not start: {line!r} (log {log.name})")
    return proc, line.split()[-1].rstrip("/")


def cpu_ticks(pid):
    """utime + stime of a process, in seconds (for the whole-run figure)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def run_bench(args, bench, sub_urls, pub_url, server_pid, also_pids):
    argv = [bench, "fanout"]
    for u in sub_urls:
        argv += ["--url", u + "/sub"]
    argv += ["--pub-url", pub_url + "/pub", "--connections", str(args.subscribers),
             "--topics", str(args.topics), "--rate", str(args.rate), "--publishers", "1",
             "--size", "64", "--duration", str(args.duration), "--warmup", str(args.warmup),
             "--settle", str(args.settle), "--drain-timeout", "5", "--server-pid", str(server_pid)]
    for p in also_pids:
        argv += ["--also-pid", str(p)]
    argv.append("--quiet")
    budget = args.duration + args.settle + 60
    r = subprocess.run(argv, capture_output=True, text=True, timeout=budget)
    if not r.stdout.strip().startswith("{"):
        raise RuntimeError(f"wsgate-bench failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return argv, json.loads(r.stdout)


def summarize(label, out, names, pids, window_s):
    """Figures of one run: delivery, latency per instance, CPU per publish."""
    published_window = out["published"] * max(window_s, 0) / max(out["config"]["duration_s"], 1e-9)
    deliveries = out["window_delivered"]
    cpu = {names[0]: out["server"].get("cpu_s_window")}
    for name, a in zip(names[1:], out.get("also", [])):
        cpu[name] = a.get("cpu_s_window")
    s = {
        "label": label,
        "published": out["published"],
        "expected": out["expected"],
        "delivered": out["delivered"],
        "lost": out["lost"],
        "duplicates": out["duplicates"],
        "mismatched": out["mismatched"],
        "delivered_share_percent": round(100.0 * out["delivered"] / out["expected"], 4) if out["expected"] else 0.0,
        "publish_rate_per_s": out["publish_rate_per_s"],
        "deliveries_per_s": out["deliveries_per_s"],
        "latency_us": out["latency_us"],
        "cpu_s_window": cpu,
        "cpu_us_per_publish": {k: round(v * 1e6 / published_window, 3) if v is not None and published_window else None
                               for k, v in cpu.items()},
        "cpu_us_per_delivery": {k: round(v * 1e6 / deliveries, 3) if v is not None and deliveries else None
                                for k, v in cpu.items()},
        "client_cpu_s": out["client"]["cpu_s"],
        "errors": out["errors"],
        "failures": out.get("failures", {}),
    }
    if "latency_us_by_url" in out:
        s["latency_us_by_instance"] = dict(zip(names, out["latency_us_by_url"]))
    wsgate = [v for k, v in cpu.items() if k != "redis" and v is not None]
    s["cpu_us_per_publish"]["wsgate_total"] = round(sum(wsgate) * 1e6 / published_window, 3) if published_window else None
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--settle", type=float, default=1,
                    help="seconds between the last subscriber's open and the first publish, "
                         "so that every instance's Redis SUBSCRIBE is in place")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--history", action="store_true",
                    help="every topic keeps a history (cluster.history_topics=*)")
    ap.add_argument("--out")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.instances, args.subscribers, args.topics, args.rate = 3, 30, 3, 300
        args.duration, args.warmup, args.settle = 1, 0, 0.5
    if not (2 <= args.instances <= 8 and 1 <= args.subscribers <= 20000 and 1 <= args.topics <= 10000
            and 1 <= args.rate <= 100000 and 0 < args.duration <= 60 and 0 <= args.warmup < args.duration
            and 0 <= args.settle <= 10):
        sys.exit("cluster bench: out of bounds (2-8 instances, <= 20,000 subscribers, <= 100,000 msg/s, <= 60 s)")
    b = os.path.abspath(args.build_dir)
    bench = os.path.join(b, "bench", "wsgate-bench")
    server = os.path.join(b, "bench", "wsgate-bench-server")
    for exe in (bench, server):
        if not os.access(exe, os.X_OK):
            sys.exit(f"cluster bench: {exe} not found (build the bench targets in {b})")

    def on_term(sig, frame):
        raise SystemExit(f"cluster bench: signal {sig}")
    signal.signal(signal.SIGTERM, on_term)

    history = ["--set", "cluster.history_topics=*"] if args.history else []
    history_text = " --set cluster.history_topics=*" if args.history else ""
    tmp = tempfile.mkdtemp(prefix="wsgate-cluster-bench-")
    result = {"loadavg_before": open("/proc/loadavg").read().split()[:3],
              "cpus": os.cpu_count(), "config": vars(args).copy()}
    ok = True
    redis = None
    try:
        window_s = args.duration - args.warmup
        # The cluster: Redis and N instances.
        redis = start_redis()
        port, redis_argv = redis.port, redis.argv
        names = [chr(ord("A") + i) for i in range(args.instances)]
        procs, urls = [], []
        for n in names:
            p, u = start_instance(server, ["--set", f"cluster.redis=127.0.0.1:{port}", *history], tmp, n)
            procs.append(p)
            urls.append(u)
        # Each instance holds two Redis connections (commands, subscriptions).
        want = 2 * args.instances + 1
        deadline = time.monotonic() + 10
        while redis_clients(redis) < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the instances did not all reach Redis (logs in {tmp})")
            time.sleep(0.05)
        pids = [p.pid for p in procs] + [redis.proc.pid]
        cpu0 = {n: cpu_ticks(p) for n, p in zip(names + ["redis"], pids)}
        argv, out = run_bench(args, bench, urls, urls[0], procs[0].pid, pids[1:])
        cpu1 = {n: cpu_ticks(p) for n, p in zip(names + ["redis"], pids)}
        s = summarize("cluster", out, names + ["redis"], pids, window_s)
        s["cpu_s_whole_run"] = {n: round(cpu1[n] - cpu0[n], 2) for n in cpu0}
        s["commands"] = [" ".join(redis_argv).replace(redis.tmp, "TMP").replace(f" {port} ", " PORT ")] + [
            f"{server} --host 127.0.0.1 --port 0 --topics --set limits.max_connections=30000 "
            f"--set cluster.redis=127.0.0.1:PORT{history_text}   # instance {n}" for n in names] + [
            " ".join(argv).replace(str(procs[0].pid), "PID_A")]
        for n, u in zip(names, urls):
            s["commands"][-1] = s["commands"][-1].replace(u, f"ws://INSTANCE_{n}")
        for p in pids[1:]:
            s["commands"][-1] = s["commands"][-1].replace(f"--also-pid {p}", "--also-pid PID")
        result["cluster"] = s
        ok = ok and s["lost"] == 0 and s["duplicates"] == 0 and s["mismatched"] == 0 and s["errors"] == 0
        # The machinery itself: a latency for every instance, a CPU time for every process.
        by = s.get("latency_us_by_instance", {})
        ok = ok and all(by.get(n, {}).get("count", 0) > 0 for n in names)
        ok = ok and all(v is not None for v in s["cpu_s_window"].values())
        stop_all()

        # The baseline: the same load on one instance, no Redis.
        if not args.no_baseline:
            p, u = start_instance(server, history, tmp, "solo")
            argv, out = run_bench(args, bench, [u], u, p.pid, [])
            s = summarize("one instance, no Redis", out, ["A"], [p.pid], window_s)
            s["commands"] = [f"{server} --host 127.0.0.1 --port 0 --topics --set limits.max_connections=30000"
                             f"{history_text}",
                             " ".join(argv).replace(u, "ws://INSTANCE_A").replace(str(p.pid), "PID_A")]
            result["baseline"] = s
            ok = ok and s["lost"] == 0 and s["duplicates"] == 0 and s["errors"] == 0
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        result["error"] = str(e)
        ok = False
    finally:
        stop_all()
        if redis:
            redis.stop()  # its directory
    result["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"cluster bench: FAILED (logs kept in {tmp})", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all()
