#!/usr/bin/python3
"""Runs the wsgate benchmark matrix and writes RESULTS.md, results.json and plots.

    bench/run_matrix.py --build-dir BUILD [--out DIR] [--reps N] [--duration S]
                        [--cases echo,echo_tls,memory,handshake,broadcast,heartbeat,topics,slow]
                        [--max-conns N] [--smoke] [--no-pin]

Every case runs against wsgate (bench/servers/wsgate_bench_server.c through the C
ABI) and the two baselines (bench/baseline/: plain libwebsockets written the
lws examples' way, and raw epoll), each server freshly started for each run,
pinned to CPU 0 while wsgate-bench runs pinned to CPU 1. Each case is repeated
--reps times, the servers interleaved within each repetition so that they
share the machine's conditions; RESULTS.md gives medians, the spread
(min..max), the ratios wsgate / plain lws and wsgate / epoll of the
medians of this same run, and the targets of issues 10 and 11
(evaluate_targets), each judged against a baseline measured in the same run.
The topics and slow-consumer cases run wsgate alone (the baselines have no
topics): publish against broadcast, and slow subscribers under each delivery
policy the library knows against a run where every subscriber reads. --smoke runs a tiny
configuration (a few connections, 1 s, one repetition) to check the
machinery, not the machine.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- running


class Runner:
    def __init__(self, args):
        self.args = args
        b = os.path.abspath(args.build_dir)
        self.bin = {
            "bench": os.path.join(b, "bench", "wsgate-bench"),
            "wsgate": os.path.join(b, "bench", "wsgate-bench-server"),
            "lws": os.path.join(b, "bench", "bench-lws-baseline"),
            "epoll": os.path.join(b, "bench", "bench-epoll-baseline"),
        }
        for k, v in self.bin.items():
            if not os.access(v, os.X_OK):
                sys.exit(f"run_matrix: {v} not found (build the bench targets in {b})")
        self.pin = not args.no_pin and shutil.which("taskset") and (os.cpu_count() or 1) >= 2
        self.tmp = tempfile.mkdtemp(prefix="wsgate-matrix-")
        self.log = []  # every run: commands and results
        self.options = self._wsgate_options()

    def _wsgate_options(self):
        """Option names the library knows: which features (TLS, heartbeat) have landed."""
        out = subprocess.run([self.bin["wsgate"], "--list-options"], capture_output=True, text=True).stdout
        return set(out.split())

    def has_option(self, name):
        return name in self.options

    def option_values(self, name):
        """The values of an enum option (["close", "drop"]), or None when the
        library lacks the option or it is not a choice."""
        if not self.has_option(name):
            return None
        r = subprocess.run([self.bin["wsgate"], "--describe-option", name], capture_output=True, text=True)
        try:
            d = json.loads(r.stdout)
        except ValueError:
            return None
        return d["range"].split("|") if d.get("type") == "enum" and d.get("range") else None

    def server_argv(self, kind, extra=()):
        if kind == "wsgate":
            return [self.bin["wsgate"], "--host", "127.0.0.1", "--port", "0",
                    "--set", f"limits.max_connections={self.args.max_conns + 1000}", *extra]
        if kind == "lws":
            return [self.bin["lws"], "--host", "127.0.0.1", "--port", "0", *extra]
        return [self.bin["epoll"], "--host", "127.0.0.1", "--port", "0", *extra]

    def run(self, label, server, bench_args, timeout=300):
        """Starts the server, runs wsgate-bench against it, stops the server."""
        errlog = open(os.path.join(self.tmp, "server.log"), "w+")
        pin_s = ["taskset", "-c", "0"] if self.pin else []
        pin_b = ["taskset", "-c", "1"] if self.pin else []
        proc = subprocess.Popen(pin_s + server, stdout=subprocess.PIPE, stderr=errlog, text=True)
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            proc.kill()
            errlog.seek(0)
            raise RuntimeError(f"{server[0]} did not start: {line!r} {errlog.read()[-500:]}")
        url = line.split()[-1].rstrip("/")
        mode = bench_args[0]
        path = "/sub" if mode == "fanout" else "/"
        argv = [self.bin["bench"], mode, "--url", url + path, *bench_args[1:],
                "--server-pid", str(proc.pid), "--quiet"]
        t0 = time.time()
        try:
            r = subprocess.run(pin_b + argv, capture_output=True, text=True, timeout=timeout)
            out = json.loads(r.stdout) if r.stdout.strip().startswith("{") else None
            err = r.stderr.strip()
        except subprocess.TimeoutExpired:
            out, err = None, "timeout"
        took = time.time() - t0
        proc.send_signal(signal.SIGTERM)
        try:
            sout, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            sout, _ = proc.communicate()
        stats = {}
        for ln in (sout or "").splitlines():
            if ln.startswith("{"):
                try:
                    stats = json.loads(ln)
                except ValueError:
                    pass
        errlog.close()
        entry = {"label": label, "server_cmd": " ".join(pin_s + server),
                 "bench_cmd": " ".join(pin_b + argv).replace(url, "ws://127.0.0.1:PORT")
                 .replace(f"--server-pid {proc.pid}", "--server-pid PID"),
                 "result": out, "server_exit": stats, "seconds": round(took, 1)}
        if out is None:
            entry["error"] = err[-500:]
            print(f"  {label}: FAILED {err[-300:]}", file=sys.stderr)
        self.log.append(entry)
        return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return (min(xs), max(xs)) if xs else (None, None)


def get(d, path):
    for k in path.split("/"):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


# ---------------------------------------------------------------- cases


def plan(args, runner):
    """The matrix: (case, label, server argv, bench args)."""
    smoke = args.smoke
    d = str(args.duration)
    n_echo = "4" if smoke else "100"
    cases = []
    pick = set(args.cases.split(","))

    if "echo" in pick:
        for w in ((16,) if smoke else (1, 16)):
            for s in ((64,) if smoke else (64, 4096)):
                key = f"echo W={w} S={s}"
                bargs = ["echo", "--connections", n_echo, "--window", str(w), "--size", str(s),
                         "--duration", d, "--warmup", "0" if smoke else "1"]
                for srv in ("wsgate", "lws", "epoll"):
                    cases.append((key, srv, runner.server_argv(srv), bargs))
                if w == 16 and s == 4096:
                    # The read size's effect: with the smallest read buffer a
                    # 4 KiB message never arrives whole in one read (the
                    # default, 64 KiB, can take up to 15 of them at once).
                    cases.append((key, "wsgate rx=4096", runner.server_argv(
                        "wsgate", ["--set", "tuning.rx_buffer_bytes=4096"]), bargs))

    if "echo_tls" in pick:
        cert, key = make_cert(runner.tmp)
        if cert:
            bargs = ["echo", "--connections", n_echo, "--window", "16", "--size", "64",
                     "--duration", d, "--warmup", "0" if smoke else "1"]
            if runner.has_option("tls.cert_file"):
                cases.append(("echo TLS W=16 S=64", "wsgate", runner.server_argv(
                    "wsgate", ["--set", f"tls.cert_file={cert}", "--set", f"tls.key_file={key}"]), bargs))
            cases.append(("echo TLS W=16 S=64", "lws", runner.server_argv("lws", ["--tls", cert, key]), bargs))

    if "memory" in pick:
        sizes = [args.max_conns] if smoke else [10000, args.max_conns]
        for n in sizes:
            key = f"idle memory N={n}"
            hold = ["connect", "--connections", str(n), "--duration", "0.2" if smoke else "1",
                    "--settle", "0.2" if smoke else "1", "--sources", "127.0.0.2-127.0.0.5"]
            # Default settings only: wsgate keeps no receive buffer per
            # connection, so its read-buffer size no longer changes this.
            for srv in ("wsgate", "lws", "epoll"):
                cases.append((key, srv, runner.server_argv(srv), hold))

    if "handshake" in pick:
        n = "100" if smoke else "5000"
        hs = ["connect", "--connections", n, "--duration", "0", "--settle", "0", "--concurrency", "128"]
        for label, argv in (("wsgate", runner.server_argv("wsgate")),
                            ("wsgate log=info", runner.server_argv("wsgate", ["--set", "log.level=info"])),
                            ("lws", runner.server_argv("lws")),
                            ("epoll", runner.server_argv("epoll"))):
            cases.append(("handshakes plain", label, argv, hs))
        cert, key = make_cert(runner.tmp)
        if cert:
            n_tls = "50" if smoke else "2000"
            hs_tls = ["connect", "--connections", n_tls, "--duration", "0", "--settle", "0",
                      "--concurrency", "128"]
            tls = ["--set", f"tls.cert_file={cert}", "--set", f"tls.key_file={key}"]
            if runner.has_option("tls.cert_file"):
                cases.append(("handshakes TLS", "wsgate", runner.server_argv("wsgate", tls), hs_tls))
                if runner.has_option("auth.jwt.secret_file"):
                    for alg in ("HS256", "ES256"):
                        opts, token = make_jwt(runner.tmp, alg)
                        if token:
                            cases.append(("handshakes TLS", f"wsgate + JWT {alg}", runner.server_argv(
                                "wsgate", tls + ["--set", "auth.mode=jwt"] + opts), hs_tls + ["--token", token]))
            cases.append(("handshakes TLS", "lws", runner.server_argv("lws", ["--tls", cert, key]), hs_tls))

    if "broadcast" in pick:
        for subs, rate in (((1000, 1000),) if smoke else ((1000, 1000), (10000, 100))):
            n = str(subs // 100) if smoke else str(subs)
            key = f"broadcast {subs} subscribers x {rate} msg/s"
            for srv in ("wsgate", "lws", "epoll"):
                cases.append((key, srv, runner.server_argv(srv),
                              ["fanout", "--connections", n, "--publishers", "1", "--rate", str(rate),
                               "--size", "64", "--duration", d, "--drain-timeout", "5",
                               "--sources", "127.0.0.2-127.0.0.5"]))

    if "topics" in pick:
        # Publish to topics against broadcast at the same deliveries per
        # second: to the same subscribers (only the path differs), and to a
        # tenth of them at ten times the rate (the broadcast case above).
        t = TOPICS[smoke]
        case = topics_case(t)
        server = runner.server_argv("wsgate", ["--topics"])
        common = ["--publishers", "1", "--size", "64", "--duration", d, "--drain-timeout", "5",
                  "--sources", "127.0.0.2-127.0.0.5"]
        cases.append((case, "wsgate publish", server,
                      ["fanout", "--connections", str(t["subs"]), "--topics", str(t["topics"]),
                       "--rate", str(t["rate"]), *common]))
        for subs, rate in t["broadcasts"]:
            cases.append((case, broadcast_label(subs, rate), server,
                          ["fanout", "--connections", str(subs), "--rate", str(rate), *common]))

    if "slow" in pick:
        # Some subscribers stop reading; the others' latency against a run
        # where all read, under every delivery policy this library has (only
        # its fixed close-with-1013 without limits.queue_policy). Twice the
        # usual duration: the policy acts once a stalled queue reaches
        # limits.max_queue_bytes, a second or two into the run.
        t = SLOW[smoke]
        case = slow_case(t)
        base = ["--topics", "--set", f"limits.max_queue_bytes={t['queue']}"]
        fanout = ["fanout", "--connections", str(t["subs"]), "--topics", str(t["topics"]),
                  "--rate", str(t["rate"]), "--size", str(t["size"]), "--publishers", "1",
                  "--duration", str(2 * args.duration), "--drain-timeout", "5"]
        cases.append((case, "all reading", runner.server_argv("wsgate", base), fanout))
        policies = runner.option_values("limits.queue_policy")
        for p in policies or ["close"]:
            extra = ["--set", f"limits.queue_policy={p}"] if policies else []
            cases.append((case, f"policy={p}", runner.server_argv("wsgate", base + extra),
                          fanout + ["--slow", str(t["slow"])]))

    if "heartbeat" in pick:
        n = "100" if smoke else "10000"
        hold = ["connect", "--connections", n, "--duration", "0.5" if smoke else "5",
                "--settle", "0.2" if smoke else "1", "--sources", "127.0.0.2-127.0.0.5"]
        if runner.has_option("heartbeat.ping_interval_ms"):
            off = ["--set", "heartbeat.ping_interval_ms=0", "--set", "heartbeat.pong_wait_ms=0"]
            on = ["--set", "heartbeat.ping_interval_ms=1000", "--set", "heartbeat.pong_wait_ms=5000"]
            tick = ["--set", "heartbeat.tick_ms=1000"]
            for label, extra in (("wsgate pings off", off), ("wsgate ping 1 s", on),
                                 ("wsgate pings off, tick 1 s", off + tick),
                                 ("wsgate ping 1 s, tick 1 s", on + tick)):
                cases.append(("heartbeat", label, runner.server_argv("wsgate", extra), hold))
            cases.append(("heartbeat", "lws (no heartbeat)", runner.server_argv("lws"), hold))
    return cases


# The topics case: subscribers spread over topics, publishes/s spread over
# the topics, and the broadcasts making as many deliveries/s (subscribers,
# msg/s; the first to the same subscribers). Keyed by --smoke.
TOPICS = {
    False: {"subs": 10000, "topics": 100, "rate": 10000, "broadcasts": ((10000, 100), (1000, 1000))},
    True: {"subs": 100, "topics": 10, "rate": 1000, "broadcasts": ((100, 100), (10, 1000))},
}
# The slow-consumer case: 1 KiB messages, so that a stalled subscriber's
# queue reaches limits.max_queue_bytes (`queue`) a second or two into the run.
SLOW = {
    False: {"subs": 1000, "topics": 10, "slow": 10, "rate": 2000, "size": 1024, "queue": 262144},
    True: {"subs": 40, "topics": 4, "slow": 2, "rate": 400, "size": 1024, "queue": 65536},
}


def topics_case(t):
    return f"topics {t['subs']} subscribers / {t['topics']} topics x {t['rate']} msg/s"


def broadcast_label(subs, rate):
    return f"wsgate broadcast {subs} x {rate} msg/s"


def slow_case(t):
    return (f"slow consumers {t['subs']} subscribers / {t['topics']} topics x {t['rate']} msg/s, "
            f"{t['slow']} stop reading")


_CERT = {}
_JWT = {}


def b64url(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(tmp, alg):
    """A key the server verifies with and a token signed with it (valid for a day).
    HS256: secret file; ES256: P-256 public key, signature converted from DER to r||s."""
    if alg in _JWT:
        return _JWT[alg]
    import hashlib
    import hmac
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps({"sub": "bench", "exp": int(time.time()) + 86400},
                             separators=(",", ":")).encode())
    signing = f"{head}.{body}".encode()
    result = (None, None)
    if alg == "HS256":
        secret = os.urandom(32).hex().encode()
        path = os.path.join(tmp, "jwt-secret")
        with open(path, "wb") as f:
            f.write(secret)
        sig = hmac.new(secret, signing, hashlib.sha256).digest()
        result = (["--set", f"auth.jwt.secret_file={path}"], f"{head}.{body}.{b64url(sig)}")
    elif alg == "ES256" and shutil.which("openssl"):
        key, pub = os.path.join(tmp, "jwt-ec.pem"), os.path.join(tmp, "jwt-ec-pub.pem")
        ok = subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
                            capture_output=True).returncode == 0 and \
            subprocess.run(["openssl", "ec", "-in", key, "-pubout", "-out", pub],
                           capture_output=True).returncode == 0
        r = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing,
                           capture_output=True) if ok else None
        if r is not None and r.returncode == 0:
            der = r.stdout  # SEQUENCE { INTEGER r, INTEGER s }
            i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
            ints = []
            for _ in range(2):
                n = der[i + 1]
                ints.append(der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0"))
                i += 2 + n
            result = (["--set", f"auth.jwt.key_file={pub}"], f"{head}.{body}.{b64url(ints[0] + ints[1])}")
    _JWT[alg] = result
    return result


def make_cert(tmp):
    """An ECDSA P-256 self-signed certificate (what a modern deployment uses)."""
    if "c" in _CERT:
        return _CERT["c"]
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                       capture_output=True) if shutil.which("openssl") else None
    _CERT["c"] = (cert, key) if r is not None and r.returncode == 0 else (None, None)
    return _CERT["c"]


# ---------------------------------------------------------------- report

METRICS = {
    "echo": [("messages/s", "messages_per_s", 0), ("server CPU us/msg", "server/cpu_us_per_message", 3),
             ("RTT p50 us", "rtt_us/p50", 0), ("RTT p99 us", "rtt_us/p99", 0), ("RTT p99.9 us", "rtt_us/p99.9", 0),
             ("server CPU %", "server/cpu_percent_window", 0)],
    "memory": [("KiB/conn", "server/kib_per_connection", 2), ("connected", "connected", 0),
               ("server RSS MiB", "server/rss_kib_loaded", 1), ("connects/s", "connect_rate_per_s", 0)],
    "handshake": [("handshakes/s", "connect_rate_per_s", 0), ("server CPU us/handshake", "server/cpu_us_per_handshake", 1),
                  ("handshake p50 us", "handshake_us/p50", 0), ("handshake p99 us", "handshake_us/p99", 0),
                  ("failed", "failed", 0)],
    "broadcast": [("deliveries/s", "deliveries_per_s", 0), ("delivered", "delivered_ratio", 3),
                  ("server CPU us/delivery", "server/cpu_us_per_delivery", 3),
                  ("latency p50 ms", "latency_us/p50", 1), ("latency p99 ms", "latency_us/p99", 1),
                  ("server CPU %", "server/cpu_percent_window", 0)],
    "slow": [("others' p50 ms", "latency_us/p50", 1), ("others' p99 ms", "latency_us/p99", 1),
             ("others delivered", "delivered_ratio", 3), ("server CPU us/delivery", "server/cpu_us_per_delivery", 3),
             ("slow: delivered", "slow/delivered", 0), ("slow: lost", "slow/lost", 0),
             ("slow: closed", "slow/dropped", 0), ("server RSS growth MiB", "server/rss_growth", 2)],
    "heartbeat": [("server CPU %", "server/cpu_percent_window", 2),
                  ("CPU us per conn-second", "server/cpu_us_per_connection_second", 3),
                  ("pings answered", "pings", 0), ("survived", "survived", 0)],
}


METRICS["topics"] = METRICS["broadcast"]


def family(case):
    if case.startswith("topics "):
        return "topics"
    if case.startswith("slow consumers"):
        return "slow"
    if case.startswith("echo"):
        return "echo"
    if case.startswith("idle memory"):
        return "memory"
    if case.startswith("handshakes"):
        return "handshake"
    if case.startswith("broadcast"):
        return "broadcast"
    return "heartbeat"


def value(result, path, label):
    if path == "server/rss_growth":
        # Over the measured window: what the subscribers that stopped reading
        # made the server hold (sampled at the window's end, before they read again).
        end, loaded = get(result, "server/rss_kib_end"), get(result, "server/rss_kib_loaded")
        return (end - loaded) / 1024.0 if end is not None and loaded is not None else None
    v = get(result, path) if result else None
    if v is None:
        return None
    if path == "server/rss_kib_loaded":
        return v / 1024.0
    if path.startswith("latency_us/"):
        return v / 1000.0
    return v


def fmt(v, digits):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def summarize(runs):
    """{case: {label: {metric_path: [values per rep]}}} in first-seen order."""
    table = {}
    for e in runs:
        case, label = e["case"], e["label"]
        fam = family(case)
        row = table.setdefault(case, {}).setdefault(label, {})
        for _, path, _ in METRICS[fam]:
            row.setdefault(path, []).append(value(e["result"], path, label))
        row.setdefault("_results", []).append(e["result"])
    return table


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def machine_info(build_dir):
    info = {}
    try:
        cpu = open("/proc/cpuinfo").read()
        m = re.search(r"model name\s*:\s*(.*)", cpu)
        info["cpu"] = m.group(1).strip() if m else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    info["cores"] = os.cpu_count()
    info["kernel"] = platform.release()
    try:
        mem = open("/proc/meminfo").read()
        info["memory_gib"] = round(int(re.search(r"MemTotal:\s*(\d+)", mem).group(1)) / 1048576, 1)
    except (OSError, AttributeError):
        pass
    for pkg in ("libwebsockets-dev", "libssl-dev"):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        info[pkg] = r.stdout.strip() or "?"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    info["nofile"] = f"{soft} soft / {hard} hard"
    # The source the build directory was configured from (it may be another tree).
    src = HERE + "/.."
    try:
        cache = open(os.path.join(build_dir, "CMakeCache.txt")).read()
        m = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$", cache, re.M)
        if m:
            src = m.group(1).strip()
    except OSError:
        pass
    r = subprocess.run(["git", "-C", src, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    # .git is a directory in a clone and a file in a git worktree.
    if r.returncode == 0 and os.path.exists(os.path.join(src, ".git")):
        info["commit"] = r.stdout.strip()
        r = subprocess.run(["git", "-C", src, "status", "--porcelain", "--", "lib", "include"],
                           capture_output=True, text=True)
        info["lib_dirty"] = bool(r.stdout.strip())
    else:
        info["commit"] = f"source tree {src} (not a git checkout)"
        info["lib_dirty"] = False
    info["port_range"] = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
    return info


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"] * 3


def gnuplot(out_dir, table, notes):
    if not shutil.which("gnuplot"):
        notes.append("gnuplot is not installed: plots skipped (apt-get install gnuplot-nox).")
        return []
    made = []
    # Latency percentiles: echo W=16 S=64 and the 1,000-subscriber broadcast.
    for case, name, path, unit, title in (
            ("echo W=16 S=64", "latency_echo.png", "rtt_us", 1.0, "Echo round trip, 100 connections x 16 in flight, 64 B (us)"),
            ("broadcast 1000 subscribers x 1000 msg/s", "latency_broadcast.png", "latency_us", 1000.0,
             "Broadcast 1,000 msg/s to 1,000 subscribers: publish-to-delivery (ms)")):
        if case not in table:
            continue
        dat = os.path.join(out_dir, name.replace(".png", ".dat"))
        labels = list(table[case].keys())
        with open(dat, "w") as f:
            f.write("pct " + " ".join(f'"{l}"' for l in labels) + "\n")
            for i, p in enumerate(("p50", "p90", "p99", "p99.9")):
                vals = []
                for l in labels:
                    v = med([get(r, f"{path}/{p}") for r in table[case][l]["_results"] if r])
                    vals.append("NaN" if v is None else f"{v / unit:.3f}")
                f.write(f"{p} " + " ".join(vals) + "\n")
        plot = ", ".join(f"'{dat}' using {i + 2}:xtic(1) with linespoints lw 2 title columnhead({i + 2})"
                         for i in range(len(labels)))
        script = (f"set terminal pngcairo size 900,500\nset output '{os.path.join(out_dir, name)}'\n"
                  f"set title \"{title}\"\nset logscale y\nset grid\nset key left top\n"
                  f"set xlabel 'percentile'\nplot {plot}\n")
        if subprocess.run(["gnuplot"], input=script, text=True, capture_output=True).returncode == 0:
            made.append(name)
        os.unlink(dat)
    # Memory per connection, by server and size.
    mem_cases = [c for c in table if c.startswith("idle memory")]
    if mem_cases:
        labels = []
        for c in mem_cases:
            for l in table[c]:
                if l not in labels:
                    labels.append(l)
        dat = os.path.join(out_dir, "memory.dat")
        with open(dat, "w") as f:
            f.write("server " + " ".join(f'"{c.replace("idle memory ", "")}"' for c in mem_cases) + "\n")
            for l in labels:
                vals = []
                for c in mem_cases:
                    v = med(table[c].get(l, {}).get("server/kib_per_connection", []))
                    vals.append("NaN" if v is None else f"{v:.3f}")
                f.write(f'"{l}" ' + " ".join(vals) + "\n")
        plot = ", ".join(f"'{dat}' using {i + 2}:xtic(1) title columnhead({i + 2})" for i in range(len(mem_cases)))
        script = (f"set terminal pngcairo size 900,500\nset output '{os.path.join(out_dir, 'memory.png')}'\n"
                  "set title 'Idle server memory per connection (KiB, user space RSS)'\nset style data histograms\n"
                  "set style fill solid 0.8 border -1\nset grid ytics\nset yrange [0:*]\nset key right top\n"
                  f"plot {plot}\n")
        if subprocess.run(["gnuplot"], input=script, text=True, capture_output=True).returncode == 0:
            made.append("memory.png")
        os.unlink(dat)
    return made


def write_results(args, out_dir, runs, info, load_before, load_after, started, elapsed, runner):
    table = summarize(runs)
    notes = []
    plots = gnuplot(out_dir, table, notes)
    L = []
    w = L.append
    w("# wsgate benchmark results\n")
    w(f"Generated by `bench/run_matrix.py` on {started} in {elapsed / 60:.1f} minutes"
      f"{' (smoke configuration: checks the machinery, not the machine)' if args.smoke else ''}.\n")
    w("## Machine and method\n")
    w(f"- CPU: {info['cpu']}, {info['cores']} cores; {info.get('memory_gib', '?')} GiB; Linux {info['kernel']}")
    w(f"- libwebsockets {info['libwebsockets-dev']}, OpenSSL {info['libssl-dev']} (Debian packages)")
    w(f"- Source: commit `{info['commit']}`" + (" (lib/ or include/ had uncommitted changes)" if info["lib_dirty"] else ""))
    w(f"- Open files per process: {info['nofile']}. Each process may open at most the hard limit "
      f"(20,000 here), so benchmarks on this machine stay below about 19,000 connections per "
      f"process: the largest memory case holds {args.max_conns:,} (the server, one process, is the cap; "
      f"wsgate-bench itself would spread more over worker processes and source addresses).")
    w(f"- Ephemeral ports {info['port_range'][0]}-{info['port_range'][1]} per source address; "
      "cases with many connections spread them over 127.0.0.2-127.0.0.5.")
    pin = "server pinned to CPU 0 and wsgate-bench to CPU 1 (`taskset`)" if runner.pin else \
        "no CPU pinning (taskset missing or fewer than 2 CPUs)"
    w(f"- Placement: {pin}. Each server is started fresh for every run and stopped after it.")
    w(f"- Repetitions: {args.reps} per case, servers interleaved within each repetition; "
      f"figures are medians with the spread (min..max) across repetitions. Measured phase: "
      f"{args.duration} s (echo: after a 1 s warm-up).")
    w(f"- Load average (1/5/15 min) before: {' '.join(load_before)}, after: {' '.join(load_after)}. "
      "The machine is shared with other work: message rates and latencies move with it; "
      "**server CPU time per message** (server CPU over the measured window divided by the "
      "messages in it, from /proc/PID/task/*/schedstat) is the steadier figure.")
    w("- Memory per connection is the server's resident set (VmRSS) with N idle connections open "
      "minus before any, divided by N: user-space memory only; the kernel's socket memory "
      "(several KiB per TCP connection, the same for every server) is not included.\n")
    w("Servers: **wsgate** = `bench/servers/wsgate_bench_server.c` (libwsgate through the C ABI, "
      "log.level=warn, default settings unless noted: libwebsockets carries the bytes in its "
      "raw-skt role on libev, wsgate parses HTTP and WebSocket frames itself, reads go to one "
      "64 KiB buffer shared by all connections); **lws** = `bench/baseline/lws_baseline.c` "
      "(plain libwebsockets in its ws role, written the way the lws minimal examples are: one "
      "message per writable event, a 2,048-byte receive buffer per connection); **epoll** = "
      "`bench/baseline/epoll_baseline.c` (one read of up to 64 KiB and one coalesced write per "
      "event: the physical limit of the machine). Echo uses binary messages.\n")

    targets = evaluate_targets(table, args)
    w("## Targets\n")
    w("| target | measured (same run) | verdict |")
    w("|---|---|---|")
    for t in targets:
        w(f"| {t['target']} | {t['measured']} | {t['verdict']} |")
    w("")

    for case, rows in table.items():
        fam = family(case)
        metrics = METRICS[fam]
        w(f"## {case}\n")
        head = "| server | " + " | ".join(m[0] for m in metrics) + " |"
        w(head)
        w("|" + "---|" * (len(metrics) + 1))
        for label, row in rows.items():
            cells = []
            for name, path, digits in metrics:
                xs = row.get(path, [])
                m = med(xs)
                lo, hi = spread(xs)
                cell = fmt(m, digits)
                if len([x for x in xs if x is not None]) > 1 and lo != hi:
                    cell += f" ({fmt(lo, digits)}..{fmt(hi, digits)})"
                cells.append(cell)
            w(f"| {label} | " + " | ".join(cells) + " |")
        w("")
        first = metrics[0]
        cpu = next(mt for mt in metrics if mt[1].startswith("server/cpu_us")) if fam != "memory" else None
        if "wsgate" in rows and fam in ("echo", "broadcast", "handshake"):
            parts = []
            for other in ("lws", "epoll"):
                if other in rows:
                    r = ratio(med(rows["wsgate"][first[1]]), med(rows[other][first[1]]))
                    c = ratio(med(rows["wsgate"][cpu[1]]), med(rows[other][cpu[1]]))
                    if r is not None:
                        parts.append(f"wsgate / {other}: {r:.2f}x {first[0]}, {c:.2f}x {cpu[0]}"
                                     if c is not None else f"wsgate / {other}: {r:.2f}x {first[0]}")
            if parts:
                w("Ratios of medians: " + "; ".join(parts) + ".\n")
        if fam == "topics" and "wsgate publish" in rows:
            parts = []
            for label in rows:
                if label != "wsgate publish":
                    c = ratio(med(rows["wsgate publish"][cpu[1]]), med(rows[label][cpu[1]]))
                    if c is not None:
                        parts.append(f"publish / {label.replace('wsgate ', '')}: {c:.2f}x {cpu[0]}")
            if parts:
                w("Ratios of medians: " + "; ".join(parts) + ".\n")
        if fam == "heartbeat":
            w(heartbeat_note(rows))
            w("")
        failed = [e for e in runs if e["case"] == case and (e["result"] is None or get(e["result"], "errors"))]
        for e in failed:
            r = e["result"]
            if r is None:
                w(f"- {e['label']}: run failed: `{e.get('error', '')[:200]}`")
            else:
                w(f"- {e['label']}: errors {r.get('errors')}: failures {json.dumps(r.get('failures'))}"
                  f"{', lost ' + str(r.get('lost')) if r.get('lost') else ''}")
        if failed:
            w("")

    w(analysis(table, args))
    if not runner.has_option("tls.cert_file"):
        notes.append("wsgate has no TLS options in this build: its TLS cases were skipped (lws TLS ran).")
    if not runner.has_option("auth.jwt.secret_file"):
        notes.append("Handshakes with TLS + JWT: wsgate has no JWT authentication in this build "
                     "(no auth.jwt.* option): the case was skipped.")
    else:
        notes.append("TLS + JWT handshakes: the token (sub, exp) travels in `Authorization: Bearer`; "
                     "HS256 with a 64-byte secret, ES256 with a P-256 key; lws has no JWT, so its "
                     "row is TLS alone.")
    if any(family(c) == "slow" for c in table) and not runner.has_option("limits.queue_policy"):
        notes.append("Slow consumers: this library has no `limits.queue_policy`: its one behaviour, closing "
                     "a connection with 1013 once its queue passes `limits.max_queue_bytes`, is the row "
                     "`policy=close`; every policy the option lists runs once it exists.")
    if not runner.has_option("heartbeat.ping_interval_ms"):
        notes.append("wsgate has no heartbeat options in this build: the heartbeat case was skipped.")
    if plots:
        w("## Plots\n")
        for p in plots:
            w(f"![{p}]({p})\n")
    if notes:
        w("## Notes\n")
        for n in notes:
            w(f"- {n}")
        w("")
    w("## Reproducing\n")
    w("```sh")
    w("cmake -S . -B /tmp/build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build /tmp/build-bench -j2")
    extra = [] if args.reps == 3 else [f"--reps {args.reps}"]
    if args.duration != 5:
        extra.append(f"--duration {args.duration}")
    if args.max_conns != 19000:
        extra.append(f"--max-conns {args.max_conns}")
    w("bench/run_matrix.py --build-dir /tmp/build-bench " + " ".join(extra) + "   # writes bench/RESULTS.md")
    w("```\n")
    w("The exact commands of the first repetition of each case (the server prints its port; "
      "`PORT` and `PID` stand for it and for its process id):\n")
    w("```sh")
    seen = set()
    for e in runs:
        k = (e["case"], e["label"])
        if k in seen:
            continue
        seen.add(k)
        w(f"# {e['case']} / {e['label']}")
        w(e["server_cmd"] + " &")
        w(e["bench_cmd"])
    w("```")
    return "\n".join(L) + "\n", table, targets


# An idle connection's known parts (the engine of issue 10: lws is the
# transport, raw-skt role, on libev): lws' struct lws with its libev watcher,
# measured with heaptrack, and sizeof(Conn) (lib/core/conn.h).
LWS_WSI_BYTES = 1030
CONN_BYTES = 248


def analysis(table, args):
    """What wsgate does on each measured path, with this run's figures. Only
    statements true of the code and shown by the numbers: a cause that needs
    a profile is not claimed here."""
    def m(case, label, path):
        return med(table.get(case, {}).get(label, {}).get(path, []))
    L = ["## Where the time and memory go\n",
         "What the code does on each measured path, with this run's figures. Causes that only a "
         "profile can show are not claimed here.\n"]
    figures = []
    for n in dict.fromkeys((10000, args.max_conns)):
        c = f"idle memory N={n}"
        a = m(c, "wsgate", "server/kib_per_connection")
        if a is not None:
            figures.append((n, a, m(c, "lws", "server/kib_per_connection"), m(c, "epoll", "server/kib_per_connection")))
    if figures:
        known = LWS_WSI_BYTES + CONN_BYTES
        rests = [a * 1024 - known for _, a, _, _ in figures]
        L.append(
            "**Idle memory.** Per idle connection: "
            + "; ".join(f"at N={n:,} wsgate {a:.2f} KiB ({a * 1024:,.0f} B), plain lws {fmt(b, 2)} KiB, "
                        f"epoll {fmt(e, 2)} KiB" for n, a, b, e in figures)
            + f". An idle wsgate connection is libwebsockets' `struct lws` with its libev watcher (about "
            f"{LWS_WSI_BYTES:,} B, measured with heaptrack), wsgate's `Conn` ({CONN_BYTES} B), one "
            f"allocation for the facts fixed at open (path, query, origin, subprotocol... packed "
            f"together; none when all are empty) and a registry slot. It has no receive buffer: reads "
            f"land in one buffer shared by every connection (`tuning.rx_buffer_bytes`), and the frame "
            f"reader's state is allocated only while a frame or message is incomplete. The first two "
            f"parts make {known:,} B"
            + "; the measured figure is "
            + " and ".join(f"{abs(r):,.0f} B {'above' if r >= 0 else 'below'} that at N={n:,}"
                           for r, (n, _, _, _) in zip(rests, figures))
            + " (not broken down here).\n")
    c = "echo W=16 S=64"
    ws, ep, lw = (m(c, x, "server/cpu_us_per_message") for x in ("wsgate", "epoll", "lws"))
    if ws and ep:
        rws, rep = m(c, "wsgate", "messages_per_s"), m(c, "epoll", "messages_per_s")
        conns = med([get(r, "connected") for r in table[c]["wsgate"]["_results"] if r])
        L.append(
            f"**Echo, 64-byte messages, 16 in flight.** wsgate spends {ws:.3f} us of server CPU per "
            f"echoed message, the epoll baseline {ep:.3f} us ({ws / ep:.2f}x)"
            + (f", plain lws {lw:.3f} us" if lw else "") + ". On this path wsgate reads into the "
            f"shared buffer, parses every whole frame in it and unmasks the payload in place, eight "
            f"bytes at a time; a message that arrived whole in the read goes to `on_message` from that "
            f"buffer, without a copy. The bench server answers with `wsg_conn_send`, which builds the "
            f"reply frame once and queues it; before the read event returns, the frames it queued go "
            f"out in one write (copied into one batch of up to `tuning.write_batch_bytes` when there "
            f"are several), and a writable event is asked for only when the kernel does not take "
            f"them all."
            + (f" Messages per second: {fmt(rws, 0)} against {fmt(rep, 0)} ({rws / rep:.2f}x); the rate "
               f"is a closed loop ({fmt(conns, 0)} connections x 16 in flight), so it follows the round-trip time, "
               f"load generator included, while CPU per message is the server's alone."
               if rws and rep else "")
            + " A perf profile of this case at commit 73c800e (perf record, server pinned): two "
            "thirds of the server's time in the kernel, where wsgate and the baseline make the same "
            "system calls per message (perf stat: one recv and one send per read event, about 16 "
            "messages each, no epoll_ctl, in both); the rest is libwsgate (about 9 %: frame parsing, "
            "the send call's checks and dispatch, queueing), libwebsockets' event dispatch (about "
            "5.5 %), and malloc/free (about 4 %: one Frame per reply, a send queue's storage per "
            "burst), none of which the baseline has.\n")
    c = "echo W=16 S=4096"
    ws, ep, lw = (m(c, x, "server/cpu_us_per_message") for x in ("wsgate", "epoll", "lws"))
    small = m(c, "wsgate rx=4096", "server/cpu_us_per_message")
    if ws and ep:
        L.append(
            f"**Echo, 4 KiB messages, 16 in flight.** wsgate {ws:.2f} us of server CPU per message, "
            f"the epoll baseline {ep:.2f} us ({ws / ep:.2f}x)" + (f", plain lws {lw:.2f} us" if lw else "")
            + (f"; wsgate with `tuning.rx_buffer_bytes=4096` {small:.2f} us ({small / ws:.2f}x the "
               f"default's)" if small else "") + ". A client's 4,096-byte message is a 4,104-byte frame "
            f"(header and masking key). A read of the default 64 KiB can hold up to 15 of them whole; a "
            f"4,096-byte read never holds one, so there every message arrives in at least two pieces: "
            f"the frame reader's state is kept on the heap between the reads and the pieces are "
            f"gathered in the connection's message buffer (made on need, freed once the message is "
            f"handed over) before `on_message`. The replies are 4,100-byte frames: a lone one is "
            f"written from its own buffer, several are copied into one batch and written at once.\n")
    c = "handshakes plain"
    ws, ep, lw = (m(c, x, "server/cpu_us_per_handshake") for x in ("wsgate", "epoll", "lws"))
    info = m(c, "wsgate log=info", "server/cpu_us_per_handshake")
    if ws:
        parts = [f"wsgate {ws:.1f} us ({fmt(m(c, 'wsgate', 'connect_rate_per_s'), 0)}/s)"]
        for label, v in (("epoll", ep), ("plain lws", lw)):
            if v:
                key = "epoll" if label == "epoll" else "lws"
                parts.append(f"{label} {v:.1f} us ({fmt(m(c, key, 'connect_rate_per_s'), 0)}/s)")
        text = ("**Handshakes.** Server CPU per plain handshake (and handshakes per second): "
                + ", ".join(parts) + ".")
        if info:
            text += (f" At `log.level=info`, which logs one JSON line for each open and each close, "
                     f"wsgate takes {info:.1f} us.")
        text += (" libwebsockets accepts the socket as a raw byte stream; in wsgate a byte scanner "
                 "checks the request head against its limits and the HTTP/1.1 grammar, http-parser "
                 "(nodejs http-parser 2.9) parses it behind the scanner, and wsgate writes the 101 "
                 "response itself.")
        ct = "handshakes TLS"
        tws, tlw = m(ct, "wsgate", "server/cpu_us_per_handshake"), m(ct, "lws", "server/cpu_us_per_handshake")
        if tws and tlw:
            text += (f" Over TLS, a full handshake each time (ECDSA P-256, no resumption): wsgate "
                     f"{tws:.0f} us ({fmt(m(ct, 'wsgate', 'connect_rate_per_s'), 0)}/s), plain lws "
                     f"{tlw:.0f} us ({fmt(m(ct, 'lws', 'connect_rate_per_s'), 0)}/s); in both, "
                     f"libwebsockets runs TLS through OpenSSL. wsgate spends less server CPU per TLS "
                     f"handshake than plain lws; the rate is bound by the load generator's own TLS work "
                     f"on its one core, and varies from run to run more than the two servers differ "
                     f"(the table's spreads).")
        L.append(text + "\n")
    c = "broadcast 1000 subscribers x 1000 msg/s"
    ws = m(c, "wsgate", "server/cpu_us_per_delivery")
    if ws:
        ep = m(c, "epoll", "server/cpu_us_per_delivery")
        dr, ldr = m(c, "wsgate", "delivered_ratio"), m(c, "lws", "delivered_ratio")
        subs = med([get(r, "subscribers") for r in table[c]["wsgate"]["_results"] if r])
        L.append(
            f"**Broadcast.** To {fmt(subs, 0)} subscribers at 1,000 messages/s wsgate delivered "
            f"{fmt(dr * 100 if dr is not None else None, 2)} % at {ws:.3f} us of server CPU per delivery"
            + (f" (epoll {ep:.3f} us)" if ep else "") + f", p99 {fmt(m(c, 'wsgate', 'latency_us/p99'), 1)} ms "
            f"from publish to delivery (epoll {fmt(m(c, 'epoll', 'latency_us/p99'), 1)} ms)"
            + (f"; plain lws, one message per writable event, delivered {ldr * 100:.1f} %" if ldr is not None else "")
            + ". wsgate frames a broadcast once and every subscriber's queue holds a reference to that "
            "frame; a subscriber's queued frames go out in one write when the broadcast's event "
            "ends (a writable event is asked for only when the kernel does not take them all).\n")
    L += topics_analysis(table, args)
    return "\n".join(L) + "\n"


def topics_analysis(table, args):
    def m(case, label, path):
        return med(table.get(case, {}).get(label, {}).get(path, []))
    L = []
    t = TOPICS[bool(args.smoke)]
    case = topics_case(t)
    pub = m(case, "wsgate publish", "server/cpu_us_per_delivery")
    if pub:
        (s1, r1), (s2, r2) = t["broadcasts"]
        b1 = m(case, broadcast_label(s1, r1), "server/cpu_us_per_delivery")
        b2 = m(case, broadcast_label(s2, r2), "server/cpu_us_per_delivery")
        dr = m(case, "wsgate publish", "delivered_ratio")
        L.append(
            f"**Topics.** Publishing {t['rate']:,} messages/s in turn to {t['topics']} topics of "
            f"{t['subs'] // t['topics']:,} subscribers each, wsgate spent {pub:.3f} us of server CPU per "
            f"delivery and delivered {fmt(dr * 100 if dr is not None else None, 2)} % (p99 "
            f"{fmt(m(case, 'wsgate publish', 'latency_us/p99'), 1)} ms); broadcasting the same deliveries "
            f"per second to the same {s1:,} subscribers at {r1:,} msg/s, {fmt(b1, 3)} us"
            + (f" ({pub / b1:.2f}x)" if b1 else "") + f"; to {s2:,} at {r2:,} msg/s, {fmt(b2, 3)} us. "
            "The bench server reads the topic's number from the message, names the topic in decimal and "
            "calls `wsg_server_publish`, which checks the name, looks the topic up in the registry's "
            "topic index (a hash map from name to its subscriber list), frames the message once and "
            "hands the frame to each subscriber's queue through the outbox's `deliver()`; "
            "`wsg_server_broadcast` frames once and calls the same `deliver()` for every open "
            "connection, from a copy of the registry's list. What the topic path adds is per publish "
            "(the name check and the lookup), shared by the topic's subscribers.\n")
    t = SLOW[bool(args.smoke)]
    case = slow_case(t)
    rows = table.get(case, {})
    if rows.get("all reading"):
        parts = []
        for label in rows:
            closed = m(case, label, "slow/dropped")
            parts.append(f"{label}: p99 {fmt(m(case, label, 'latency_us/p99'), 1)} ms, server RSS growth "
                         f"{fmt(m(case, label, 'server/rss_growth'), 2)} MiB"
                         + (f", {fmt(closed, 0)} slow subscribers closed" if label != "all reading" else ""))
        L.append(
            f"**Slow consumers.** {t['slow']} of {t['subs']:,} subscribers ({t['topics']} topics, "
            f"{t['rate']:,} messages/s of {t['size']:,} bytes in all, {2 * args.duration:g} s measured) stop "
            f"reading when the measurement starts and read again when publishing ends; the figures are "
            f"the others'. Their sockets "
            f"announce a 1,448-byte MSS and a 4 KiB receive buffer, so the server's kernel holds some tens "
            f"of KiB for each and the rest waits in wsgate's queue, where the policy acts once it passes "
            f"`limits.max_queue_bytes` ({t['queue'] // 1024} KiB here); over loopback's 64 KiB MSS the "
            f"kernel's send buffer would first grow to megabytes. "
            + "; ".join(parts) + ". The RSS growth is from the moment every subscriber was connected to "
            "the end of the measured window, before the slow subscribers read again."
            + (" Under `close`, a subscriber whose queue passes the limit is closed with 1013 and its "
               "queue dropped." if "policy=close" in rows else "") + "\n")
    return L


def heartbeat_note(rows):
    def m(label, path):
        return med(rows.get(label, {}).get(path, []))
    lines = []
    off, on = m("wsgate pings off", "server/cpu_us_per_connection_second"), m("wsgate ping 1 s", "server/cpu_us_per_connection_second")
    res = rows.get("wsgate ping 1 s", {}).get("_results", [])
    if off is not None and on is not None:
        n = get(res[0], "survived") if res and res[0] else None
        if n:
            # One ping per connection per second in the window: the cost per
            # connection-second is the cost per ping and its pong.
            lines.append(f"Heartbeat cost: pinging each of {n:,} connections once a second adds "
                         f"{on - off:.1f} us of server CPU per connection-second, that is about "
                         f"{on - off:.0f} us per ping and pong, and keeps the server "
                         f"{m('wsgate ping 1 s', 'server/cpu_percent_window'):.0f} % busy.")
    t_off = m("wsgate pings off, tick 1 s", "server/cpu_us_per_connection_second")
    if off is not None and t_off is not None:
        lines.append(f"With no pings at all, idle connections cost {off:.3f} us per connection-second "
                     f"at the default 100 ms heartbeat tick and {t_off:.3f} us at a 1 s tick.")
    return ("\n".join(lines) + "\n") if lines else ""


# The targets of issue 10 (wsgate speaks WebSocket itself), each computed from
# this run alone: wsgate against a baseline measured beside it.
MEMORY_KIB_LIMIT = 1.3        # idle KiB per connection, default settings
ECHO_CPU_LIMIT = {64: 1.15, 4096: 1.2}  # server CPU per message, x the epoll baseline's
BROADCAST_P99_SLACK_MS = 5.0  # p99 over the epoll baseline's p99
HANDSHAKE_PLAIN_MIN = 0.95    # handshakes/s, x the epoll baseline's
HANDSHAKE_TLS_MIN = 1.0       # TLS handshakes/s, x plain lws'
# Issue 11 (topics, users and delivery policies).
PUBLISH_CPU_LIMIT = 1.1       # server CPU per delivery, publish x broadcast to the same subscribers
SLOW_P99_LIMIT = 2.0          # the reading subscribers' p99, x the all-reading run's
SLOW_RSS_QUEUES = 2.0         # RSS growth allowance, in stalled queues' worth (slow x max_queue_bytes)


def over_by(v, limit):
    """Verdict for a figure that must stay at or under limit."""
    return "met" if v <= limit else f"missed by {(v - limit) / limit * 100:.0f} %"


def under_by(v, limit):
    """Verdict for a figure that must reach at least limit."""
    return "met" if v >= limit else f"missed by {(limit - v) / limit * 100:.0f} %"


def evaluate_targets(table, args):
    out = []

    def m(case, label, path):
        return med(table.get(case, {}).get(label, {}).get(path, []))

    for n in dict.fromkeys((10000, args.max_conns)):
        case = f"idle memory N={n}"
        v = m(case, "wsgate", "server/kib_per_connection")
        if v is None:
            continue
        lo, hi = spread(table[case]["wsgate"]["server/kib_per_connection"])
        out.append({"target": f"idle memory at N={n:,}, default settings: <= {MEMORY_KIB_LIMIT} KiB/conn",
                    "measured": f"{v:.2f} KiB (runs {fmt(lo, 2)}..{fmt(hi, 2)}; lws "
                                f"{fmt(m(case, 'lws', 'server/kib_per_connection'), 2)}, epoll "
                                f"{fmt(m(case, 'epoll', 'server/kib_per_connection'), 2)})",
                    "verdict": "met" if v <= MEMORY_KIB_LIMIT else
                    f"missed by {v - MEMORY_KIB_LIMIT:.2f} KiB ({(v - MEMORY_KIB_LIMIT) / MEMORY_KIB_LIMIT * 100:.0f} %)"})
    for s, limit in ECHO_CPU_LIMIT.items():
        case = f"echo W=16 S={s}"
        cws, cep = m(case, "wsgate", "server/cpu_us_per_message"), m(case, "epoll", "server/cpu_us_per_message")
        r = ratio(cws, cep)
        if r is None:
            continue
        ws, ep = m(case, "wsgate", "messages_per_s"), m(case, "epoll", "messages_per_s")
        out.append({"target": f"echo W=16 S={s}: server CPU per message <= {limit}x epoll's",
                    "measured": f"{r:.2f}x ({cws:.3f} vs {cep:.3f} us); messages/s {fmt(ws, 0)} vs {fmt(ep, 0)}",
                    "verdict": over_by(r, limit)})
    case = "broadcast 1000 subscribers x 1000 msg/s"
    p99, ep99 = m(case, "wsgate", "latency_us/p99"), m(case, "epoll", "latency_us/p99")
    results = [r for r in table.get(case, {}).get("wsgate", {}).get("_results", [])]
    if results and p99 is not None and ep99 is not None:
        # 100 % delivered means in every repetition, not in the median one.
        lost = sum((r or {}).get("lost", 0) or 0 for r in results)
        short = sum(1 for r in results if r is None or (r.get("delivered") or 0) < (r.get("expected") or 1))
        dr = m(case, "wsgate", "delivered_ratio")
        limit = ep99 + BROADCAST_P99_SLACK_MS
        lo, hi = spread(table[case]["wsgate"]["latency_us/p99"])
        missed = []
        if lost or short:
            missed.append(f"{lost:,} deliveries lost in {short} of {len(results)} runs")
        if p99 > limit:
            missed.append(f"p99 {p99 - limit:.1f} ms over")
        out.append({"target": f"broadcast 1,000 msg/s to 1,000 subscribers: 100 % delivered, "
                              f"p99 <= epoll's p99 + {BROADCAST_P99_SLACK_MS:.0f} ms",
                    "measured": f"delivered {fmt(dr * 100 if dr is not None else None, 2)} %, p99 {p99:.1f} ms "
                                f"(runs {fmt(lo, 1)}..{fmt(hi, 1)}) against {limit:.1f} ms (epoll p99 {ep99:.1f} ms)",
                    "verdict": "missed: " + ", ".join(missed) if missed else "met"})
    out += topics_targets(table, args)
    for case, base, limit in (("handshakes plain", "epoll", HANDSHAKE_PLAIN_MIN),
                              ("handshakes TLS", "lws", HANDSHAKE_TLS_MIN)):
        ws, other = m(case, "wsgate", "connect_rate_per_s"), m(case, base, "connect_rate_per_s")
        r = ratio(ws, other)
        if r is None:
            continue
        cws, cbase = m(case, "wsgate", "server/cpu_us_per_handshake"), m(case, base, "server/cpu_us_per_handshake")
        out.append({"target": f"{case}: handshakes/s >= {limit:g}x {'plain lws' if base == 'lws' else base}",
                    "measured": f"{r:.2f}x ({fmt(ws, 0)} vs {fmt(other, 0)}/s); server CPU per handshake "
                                f"{fmt(cws, 1)} vs {fmt(cbase, 1)} us",
                    "verdict": under_by(r, limit)})
    return out


def topics_targets(table, args):
    """Issue 11's: publish costs no more than 1.1x broadcast per delivery; with
    subscribers that stop reading, the others keep their p99 within 2x of the
    all-reading run under each policy, and the server's memory stays bounded."""
    out = []

    def m(case, label, path):
        return med(table.get(case, {}).get(label, {}).get(path, []))

    t = TOPICS[bool(args.smoke)]
    case = topics_case(t)
    same, other = (broadcast_label(s, r) for s, r in t["broadcasts"])
    pub, bc = m(case, "wsgate publish", "server/cpu_us_per_delivery"), m(case, same, "server/cpu_us_per_delivery")
    r = ratio(pub, bc)
    if r is not None:
        lo, hi = spread(table[case]["wsgate publish"]["server/cpu_us_per_delivery"])
        ob = m(case, other, "server/cpu_us_per_delivery")
        dr = m(case, "wsgate publish", "delivered_ratio")
        out.append({"target": f"publish to {t['topics']} topics: server CPU per delivery <= "
                              f"{PUBLISH_CPU_LIMIT}x broadcast's to the same {t['subs']:,} subscribers",
                    "measured": f"{r:.2f}x ({pub:.3f} us, runs {fmt(lo, 3)}..{fmt(hi, 3)}, vs {bc:.3f} us); "
                                f"delivered {fmt(dr * 100 if dr is not None else None, 2)} %; broadcast to "
                                f"{t['broadcasts'][1][0]:,} x {t['broadcasts'][1][1]:,} msg/s {fmt(ob, 3)} us",
                    "verdict": over_by(r, PUBLISH_CPU_LIMIT)})

    t = SLOW[bool(args.smoke)]
    case = slow_case(t)
    rows = table.get(case, {})
    base99 = m(case, "all reading", "latency_us/p99")
    base_rss = m(case, "all reading", "server/rss_growth")
    if base99 is None:
        return out
    allowance = SLOW_RSS_QUEUES * t["slow"] * t["queue"] / 1048576.0
    for label in rows:
        if not label.startswith("policy="):
            continue
        p99, rss = m(case, label, "latency_us/p99"), m(case, label, "server/rss_growth")
        results = rows[label]["_results"]
        lost = sum((r or {}).get("lost", 0) or 0 for r in results)
        missed = []
        limit99, limit_rss = SLOW_P99_LIMIT * base99, (base_rss or 0) + allowance
        if p99 is None or p99 > limit99:
            missed.append(f"p99 {(p99 / limit99 - 1) * 100:.0f} % over" if p99 is not None else "no p99")
        if rss is None or rss > limit_rss:
            missed.append(f"RSS growth {rss - limit_rss:.2f} MiB over" if rss is not None else "no memory sample")
        if lost:
            missed.append(f"{lost:,} of the others' deliveries lost")
        out.append({"target": f"slow consumers ({t['slow']} of {t['subs']:,} stop reading), {label}: the others' "
                              f"p99 <= {SLOW_P99_LIMIT:g}x the all-reading run's, none of theirs lost; server RSS "
                              f"growth <= all-reading's + {SLOW_RSS_QUEUES:g} x {t['slow']} x limits.max_queue_bytes",
                    "measured": f"p99 {fmt(p99, 1)} ms vs {base99:.1f} ms "
                                f"({fmt(ratio(p99, base99), 2)}x); RSS growth {fmt(rss, 2)} MiB against "
                                f"{limit_rss:.2f} MiB (all reading {fmt(base_rss, 2)} MiB)",
                    "verdict": "missed: " + ", ".join(missed) if missed else "met"})
    return out


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", required=True, help="CMake build directory with the bench targets")
    ap.add_argument("--out", default=HERE, help="where RESULTS.md, results.json and the plots go (default bench/)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--cases", default="echo,echo_tls,memory,handshake,broadcast,heartbeat,topics,slow")
    ap.add_argument("--max-conns", type=int, default=19000, help="largest idle-memory case")
    ap.add_argument("--smoke", action="store_true", help="tiny configuration: few connections, 1 s, 1 rep")
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and load to CPUs")
    ap.add_argument("--source-desc", help="what source the build was made from, when it is not a git "
                    "checkout (e.g. an export of a commit)")
    ap.add_argument("--report-only", metavar="RESULTS_JSON",
                    help="rewrite RESULTS.md (and plots) from a results.json without running anything")
    args = ap.parse_args()
    if args.report_only:
        os.makedirs(args.out, exist_ok=True)
        return report_only(args)
    if args.smoke:
        args.reps, args.duration = 1, 1.0
        if args.max_conns == 19000:
            args.max_conns = 100
    os.makedirs(args.out, exist_ok=True)
    runner = Runner(args)
    cases = plan(args, runner)
    info = machine_info(args.build_dir)
    if args.source_desc:
        info["commit"], info["lib_dirty"] = args.source_desc, False
    load_before = loadavg()
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    t0 = time.time()
    runs = []
    try:
        for rep in range(args.reps):
            for i, (case, label, server, bargs) in enumerate(cases):
                print(f"[rep {rep + 1}/{args.reps} {i + 1}/{len(cases)}] {case} / {label}", file=sys.stderr, flush=True)
                result = runner.run(label, server, bargs)
                e = dict(runner.log[-1])
                e["case"], e["rep"] = case, rep
                runs.append(e)
                if result is not None:
                    print(f"    {summary_line(case, result)}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(runner.tmp, ignore_errors=True)
    elapsed = time.time() - t0
    load_after = loadavg()
    text, table, targets = write_results(args, args.out, runs, info, load_before, load_after, started, elapsed, runner)
    write_report(args.out, text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": info, "started": started, "seconds": round(elapsed), "targets": targets,
                   "args": {"reps": args.reps, "duration": args.duration, "max_conns": args.max_conns,
                            "smoke": args.smoke},
                   "load": {"before": load_before, "after": load_after}, "pinned": bool(runner.pin),
                   "wsgate_options": sorted(runner.options), "runs": runs}, f, indent=1)
    print(f"wrote {os.path.join(args.out, 'RESULTS.md')} ({elapsed / 60:.1f} min)", file=sys.stderr)
    bad = [e for e in runs if e["result"] is None or not e["result"].get("connected")]
    for e in bad:
        print(f"run_matrix: {e['case']} / {e['label']} produced no result or no connection", file=sys.stderr)
    return 1 if bad else 0


# RESULTS.md keeps what follows this line (hand-run figures of other scripts,
# such as bench/heartbeat/run.sh and bench/deflate/run.py) across matrix runs.
KEEP_MARKER = "<!-- kept by run_matrix.py: sections below come from other scripts -->"


def write_report(out_dir, text):
    path = os.path.join(out_dir, "RESULTS.md")
    kept = ""
    if os.path.exists(path):
        old = open(path).read()
        if KEEP_MARKER in old:
            kept = old[old.index(KEEP_MARKER):]
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + (kept or KEEP_MARKER + "\n"))


class _SavedRunner:
    """Stands in for Runner when the report is rewritten from results.json."""

    def __init__(self, saved):
        self.pin = saved.get("pinned", True)
        self.options = set(saved.get("wsgate_options", []))

    def has_option(self, name):
        return name in self.options


def report_only(args):
    saved = json.load(open(args.report_only))
    a = saved.get("args", {})
    for k in ("reps", "duration", "max_conns", "smoke"):
        if k in a:
            setattr(args, k, a[k])
    load = saved.get("load", {})
    text, _, _ = write_results(args, args.out, saved["runs"], saved["machine"], load.get("before", ["?"] * 3),
                               load.get("after", ["?"] * 3), saved["started"], saved["seconds"],
                               _SavedRunner(saved))
    write_report(args.out, text)
    print(f"wrote {os.path.join(args.out, 'RESULTS.md')}", file=sys.stderr)
    return 0


def summary_line(case, r):
    fam = family(case)
    parts = []
    for name, path, digits in METRICS[fam]:
        parts.append(f"{name} {fmt(value(r, path, ''), digits)}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
