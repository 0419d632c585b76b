#!/usr/bin/python3
"""Soak: one wsgate server under every kind of load at once for a set time,
its RSS, descriptors and CPU sampled every few seconds; fails when they grow
without bound, when the server dies, or when a load reports an error.

  bench/soak/soak.py BUILD_DIR [--duration S] [--interval S] [--json FILE] [...]

BUILD_DIR holds bench/wsgate-bench and bench/wsgate-bench-server. The server
(wsgate-bench-server --topics, JWT auth, an Origin allowlist, per-IP limits,
1 s pings) gets, all at once and for --duration seconds:
  stable    wsgate-bench connect: connections held the whole run, answering pings
  churn     wsgate-bench churn: connections opened, echoing, closed, continuously
  fanout    wsgate-bench fanout --topics --slow, in cycles: publishes to topics,
            with subscribers that stop reading until the server drops them
  pingers   Python: client pings (each pong awaited) and echoes
  per_ip    Python: the per-IP limit held from one address, one more refused (429)
  refused   Python: bad Origin, bad or no token, bad version, method, key,
            HTTP/1.0, long URL, too many headers, a NUL byte (403/401/426/...)
  stall     Python: half a request head, dropped after the handshake timeout
Then the load stops and the descriptors must come back to the idle count.
Loopback only (127.0.0.x); every child runs in its own process group and is
killed on exit, on a signal and at a hard deadline. See bench/README.md, Soak.
"""
import argparse
import asyncio
import base64
import collections
import hashlib
import hmac
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import judge  # noqa: E402
import probes  # noqa: E402

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TICKS = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
PER_IP = 32  # limits.max_connections_per_ip; each load's sources keep under it

# Source addresses, one range per load, so that each stays under PER_IP.
SOURCES = {"stable": "127.0.0.2-127.0.0.9", "churn": "127.0.0.10-127.0.0.11",
           "fanout": "127.0.0.12-127.0.0.19", "pingers": "127.0.0.20", "per_ip": "127.0.0.21",
           "refused": "127.0.0.22", "stall": "127.0.0.23"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("build_dir")
    p.add_argument("--bench", help="wsgate-bench (default BUILD_DIR/bench/wsgate-bench)")
    p.add_argument("--server", help="wsgate-bench-server (default BUILD_DIR/bench/wsgate-bench-server)")
    p.add_argument("--duration", type=float, default=60, help="seconds of load (CI 60, documented run 3600)")
    p.add_argument("--interval", type=float, default=5, help="seconds between samples")
    p.add_argument("--stable", type=int, default=160, help="connections held the whole run")
    p.add_argument("--churn-rate", type=float, default=50, help="churn: opens per second")
    p.add_argument("--churn-messages", type=int, default=20, help="churn: echoes per connection")
    p.add_argument("--subscribers", type=int, default=100, help="fanout: subscribers per cycle")
    p.add_argument("--slow", type=int, default=4, help="fanout: of which stop reading")
    p.add_argument("--publish-rate", type=float, default=200, help="fanout: messages/s to 10 topics")
    p.add_argument("--cycle", type=float, default=None,
                   help="fanout: seconds of publishing per cycle (default: --duration / 6, at most 20)")
    p.add_argument("--pingers", type=int, default=16, help="Python connections pinging twice a second")
    p.add_argument("--refused-rate", type=float, default=10, help="refused handshakes per second")
    p.add_argument("--leak-bytes", type=float, default=None,
                   help="the smallest leak per churned connection the RSS slope must catch "
                        "(default 1024, 64 from 30 minutes on; see bench/README.md, Soak)")
    p.add_argument("--fd-slack", type=int, default=0, help="descriptors allowed above the idle count after")
    p.add_argument("--json", help="write the samples and the verdict here")
    a = p.parse_args()
    if a.duration < 20:
        p.error("--duration must be at least 20 s (a slope needs a second half)")
    a.bench = a.bench or os.path.join(a.build_dir, "bench", "wsgate-bench")
    a.server = a.server or os.path.join(a.build_dir, "bench", "wsgate-bench-server")
    if a.cycle is None:
        a.cycle = min(20.0, a.duration / 6)
    if a.leak_bytes is None:
        a.leak_bytes = 64.0 if a.duration >= 1800 else 1024.0
    return a


def hs256_token(secret, lifetime_s):
    """A JWT the server accepts, signed with the secret it reads."""
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=")  # noqa: E731
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "soak", "exp": int(time.time() + lifetime_s)}).encode())
    sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


class Proc:
    """/proc figures of the server."""

    def __init__(self, pid):
        self.pid = pid
        self.last_cpu = self.cpu_s()
        self.last_t = time.monotonic()

    def rss_kib(self):
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB

    def hwm_kib(self):
        """VmHWM: the kernel's peak RSS, spikes between samples included (kept
        lazily: a reading may be a few pages under an earlier one, so the
        soak takes the largest). getrusage's ru_maxrss would also count the
        parent's RSS at fork, before exec."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_s(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime

    def cpu_pct(self):
        cpu, t = self.cpu_s(), time.monotonic()
        pct = 100 * (cpu - self.last_cpu) / max(1e-6, t - self.last_t)
        self.last_cpu, self.last_t = cpu, t
        return pct


class Soak:
    def __init__(self, args):
        self.a = args
        self.tmp = tempfile.mkdtemp(prefix="wsgate-soak-")  # removed only after a pass
        self.children = []  # (name, process) each in its own process group
        self.results = {}  # load -> its JSON or summary
        self.errors = []  # what a load reported that it should not have
        self.counts = probes.Counts()
        self.stats = {}  # the server's last SIGUSR1 line
        self.log_events = collections.Counter()
        self.log_pos = 0
        self.fan = collections.Counter()  # summed over cycles
        self.samples = []
        self.load_task = None

    # ---------------------------------------------------------------- processes
    async def spawn(self, name, argv, **kw):
        proc = await asyncio.create_subprocess_exec(*argv, start_new_session=True, **kw)
        self.children.append((name, proc))
        return proc

    def kill_children(self):
        for _, proc in self.children:
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    async def bench(self, name, mode, *args):
        """One wsgate-bench run; returns its JSON (None on a crash)."""
        argv = [self.a.bench, mode, "--url", self.url,
                "--token", self.token, "--quiet", *args]
        proc = await self.spawn(name, argv, stdout=asyncio.subprocess.PIPE,
                                stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        try:
            return json.loads(out)
        except ValueError:
            self.errors.append(f"{name}: wsgate-bench exited {proc.returncode} without a result: "
                               f"{err.decode(errors='replace')[-300:]}")
            return None

    async def start_server(self):
        secret_file = os.path.join(self.tmp, "secret")
        secret = base64.b64encode(os.urandom(48))
        with open(secret_file, "wb") as f:
            f.write(secret)
        self.token = hs256_token(secret, self.a.duration + 3600)
        self.server_log = os.path.join(self.tmp, "server.log")
        sets = {
            "heartbeat.ping_interval_ms": 1000, "heartbeat.pong_wait_ms": 4000,
            "heartbeat.handshake_timeout_ms": 2000,
            "auth.mode": "jwt", "auth.jwt.secret_file": secret_file,
            "security.allowed_origins": "https://app.soak.test",
            "limits.max_connections": 2000, "limits.max_connections_per_ip": PER_IP,
            "limits.handshakes_per_ip_per_s": 200, "limits.messages_per_s": 2000,
            "limits.frames_per_s": 4000,
            "limits.max_queue_bytes": 65536, "limits.queue_policy": "close",
        }
        self.server_sets = sets
        argv = [self.a.server, "--host", HOST,
                "--port", "0", "--topics"]
        for k, v in sets.items():
            argv += ["--set", f"{k}={v}"]
        with open(self.server_log, "wb") as log:
            self.server = await self.spawn("server", argv, stdout=asyncio.subprocess.PIPE, stderr=log)
        line = (await asyncio.wait_for(self.server.stdout.readline(), 10)).decode()
        if not line.startswith("listening on "):
            raise SystemExit(f"server did not start: {line!r}; log {self.server_log}")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))
        self.proc = Proc(self.server.pid)
        asyncio.get_running_loop().create_task(self.read_server_stats())

    async def read_server_stats(self):
        while True:
            line = await self.server.stdout.readline()
            if not line:
                return
            try:
                self.stats = json.loads(line)
            except ValueError:
                pass

    def read_log(self):
        """Counts the server's log events (warn and above) since the last call."""
        with open(self.server_log, "rb") as f:
            f.seek(self.log_pos)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.log_pos += end
        for line in data[:end].splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                self.log_events["(not JSON)"] += 1
                continue
            key = e.get("event", "?")
            if key == "reject":
                key = f"reject {e.get('status')}"
            elif key == "close":
                key = f"close {e.get('cause')}"
            self.log_events[key] += 1

    # ---------------------------------------------------------------- loads
    async def stable(self, seconds):
        out = await self.bench("stable", "connect", "--connections", str(self.a.stable),
                               "--duration", str(seconds), "--rate", "500",
                               "--sources", SOURCES["stable"])
        self.results["stable"] = out
        if out and not (out["connected"] == out["survived"] == self.a.stable and out["failed"] == 0
                        and out["errors"] == 0 and out["pings"] > 0):
            self.errors.append(f"stable: {out['connected']} connected, {out['survived']} survived, "
                               f"{out['pings']} pings, failures {out['failures']}")

    async def churn(self, seconds):
        out = await self.bench("churn", "churn", "--connections", "16", "--rate", str(self.a.churn_rate),
                               "--messages", str(self.a.churn_messages), "--duration", str(seconds),
                               "--sources", SOURCES["churn"])
        self.results["churn"] = out
        if out and not (out["failed"] == 0 and out["errors"] == 0 and out["lost"] == 0
                        and out["mismatched"] == 0 and out["closed_clean"] == out["opened"] > 0
                        and out["received"] == out["sent"] == out["opened"] * self.a.churn_messages):
            self.errors.append(f"churn: opened {out['opened']}, closed cleanly {out['closed_clean']}, "
                               f"sent {out['sent']}, received {out['received']}, failures {out['failures']}")

    async def fanout(self, deadline):
        """Cycles of publishing to 10 topics until the deadline; in each, the
        slow subscribers must all be dropped by the server and every other
        subscriber must get every message of its topic."""
        while deadline - time.monotonic() >= self.a.cycle + 3:
            out = await self.bench("fanout", "fanout", "--connections", str(self.a.subscribers),
                                   "--topics", "10", "--slow", str(self.a.slow),
                                   "--rate", str(self.a.publish_rate), "--size", "4096",
                                   "--duration", str(self.a.cycle), "--drain-timeout", "3",
                                   "--sources", SOURCES["fanout"])
            if not out:
                return
            slow = out["slow"]
            f = self.fan
            f["cycles"] += 1
            f["published"] += out["published"]
            f["delivered"] += out["delivered"]
            f["slow_dropped"] += slow["dropped"]
            for why, n in out["failures"].items():
                f[why] += n
            others_ok = (out["delivered"] == out["expected"] > 0 and out["lost"] == 0
                         and out["duplicates"] == 0 and out["mismatched"] == 0 and out["errors"] == 0
                         and out["subscribers"] == self.a.subscribers - self.a.slow)
            slow_ok = (slow["subscribers"] == slow["dropped"] == self.a.slow
                       and all(why.startswith("slow subscriber") for why in out["failures"]))
            if not (others_ok and slow_ok):
                self.errors.append(f"fanout cycle {f['cycles']}: delivered {out['delivered']} of "
                                   f"{out['expected']}, lost {out['lost']}, slow {slow}, "
                                   f"failures {out['failures']}")
        self.results["fanout"] = dict(self.fan)

    # ---------------------------------------------------------------- sampling
    def sample(self, t0, phase):
        rss, fds, cpu = self.proc.rss_kib(), self.proc.fds(), self.proc.cpu_pct()
        self.read_log()
        s, c = self.stats, self.counts.ok
        row = {"t_s": round(time.monotonic() - t0, 1), "phase": phase, "rss_kib": rss,
               "hwm_kib": self.proc.hwm_kib(), "fds": fds,
               "cpu_pct": round(cpu, 1), "open": s.get("opened", 0) - s.get("closed", 0),
               "opened": s.get("opened", 0), "echoed": s.get("echoed", 0),
               "published": s.get("publishes", 0), "pings": c["ping"],
               "refused": sum(n for k, n in c.items() if k not in ("ping", "echo", "held", "stall")),
               "stalled": c["stall"], "slow_dropped": self.fan["slow_dropped"],
               "errors": sum(self.counts.errors.values()) + len(self.errors)}
        self.samples.append(row)
        if len(self.samples) % 20 == 1:
            print(" ".join(f"{k:>9}" for k in row), flush=True)
        print(" ".join(f"{v:>9}" for v in row.values()), flush=True)
        return row

    async def sampler(self, t0, phase_of):
        while True:
            try:
                self.server.send_signal(signal.SIGUSR1)  # the server prints its counts
            except ProcessLookupError:
                return
            await asyncio.sleep(0.2)
            try:
                self.sample(t0, phase_of())
            except OSError:  # /proc/PID is gone: the server died, run() says so
                return
            await asyncio.sleep(max(0.0, self.a.interval - 0.2))

    # ---------------------------------------------------------------- run
    async def run(self):
        a = self.a
        await self.start_server()
        print(f"soak: server pid {self.server.pid} at {self.url}, load {a.duration:.0f} s, "
              f"sample every {a.interval:.0f} s; options {json.dumps(self.server_sets)}", flush=True)
        await asyncio.sleep(1)
        self.base_fds, self.base_rss = self.proc.fds(), self.proc.rss_kib()
        print(f"soak: idle server: {self.base_fds} descriptors, RSS {self.base_rss} KiB", flush=True)
        t0 = time.monotonic()
        load_end = t0 + a.duration
        phase = ["load"]
        sampler = asyncio.get_running_loop().create_task(self.sampler(t0, lambda: phase[0]))
        loop_deadline = load_end
        loads = [
            self.stable(a.duration - 3),  # setup and close fit in the rest
            self.churn(a.duration - 2),
            self.fanout(loop_deadline),
            probes.pingers(self.url, SOURCES["pingers"], self.token, a.pingers, 0.5, 128,
                           loop_deadline, self.counts),
            probes.per_ip(self.url, HOST, self.port, SOURCES["per_ip"], self.token, PER_IP, 1.0,
                          loop_deadline, self.counts),
            probes.refusals(HOST, self.port, SOURCES["refused"], self.token, a.refused_rate,
                            loop_deadline, self.counts),
            probes.stalled_heads(HOST, self.port, SOURCES["stall"], self.token, 2, 2.0,
                                 loop_deadline, self.counts),
        ]
        server_wait = asyncio.get_running_loop().create_task(self.server.wait())
        load_task = self.load_task = asyncio.gather(*loads)
        done, _ = await asyncio.wait([load_task, server_wait], return_when=asyncio.FIRST_COMPLETED)
        t_load_end = time.monotonic() - t0
        if server_wait in done:
            self.errors.append(f"the server exited ({self.server.returncode}) during the load")
            load_task.cancel()
            sampler.cancel()
            return self.verdict(t_load_end, None)
        phase[0] = "after"
        # Closing handshakes and the server's close_wait end within seconds.
        after = self.proc.fds()
        for _ in range(30):
            if after - self.base_fds <= a.fd_slack:
                break
            await asyncio.sleep(0.5)
            after = self.proc.fds()
        await asyncio.sleep(max(0.0, a.interval))  # one more sample, load gone
        sampler.cancel()
        self.sample(t0, "after")
        self.server.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.wait_for(self.server.wait(), 30)
        except asyncio.TimeoutError:
            rc = None
            self.errors.append("the server did not stop within 30 s of SIGTERM")
        if rc not in (0, None):
            self.errors.append(f"the server exited {rc} on SIGTERM")
        self.read_log()
        return self.verdict(t_load_end, after)

    def verdict(self, t_load_end, fds_after):
        a = self.a
        failures = list(self.errors)
        failures += [f"{k} (x{n})" for k, n in self.counts.errors.items()]
        for kind, want in [("ping", 1), ("echo", 1), ("held", PER_IP), ("per_ip", 1), ("stall", 1),
                           *((k, 1) for k in probes.refused_kinds("h", "t"))]:
            if self.counts.ok[kind] < want:
                failures.append(f"{kind}: {self.counts.ok[kind]} done, want at least {want}")
        if self.fan["cycles"] == 0 or self.fan["slow_dropped"] == 0:
            failures.append(f"fanout: {self.fan['cycles']} cycles, {self.fan['slow_dropped']} "
                            "slow subscribers dropped: no slow-reader load")
        # The server's own log: every refusal logged once, nothing at error.
        refused = sum(n for k, n in self.counts.ok.items() if k not in ("ping", "echo", "held", "stall"))
        rejects = sum(n for k, n in self.log_events.items() if k.startswith("reject"))
        if rejects != refused:
            failures.append(f"the server logged {rejects} rejects for {refused} refused requests")
        if self.log_events["(not JSON)"]:
            failures.append(f"{self.log_events['(not JSON)']} server log lines are not JSON")

        # Descriptors: the idle count after; at the peak no more than the
        # load's sockets (each load's most connections at once) and a margin
        # for sockets in their close handshake.
        conns = a.stable + 16 + a.subscribers + 1 + a.pingers + PER_IP + 1 + 1 + 2
        fd_ceiling = self.base_fds + 2 * conns
        peak_fds = max((s["fds"] for s in self.samples), default=0)
        if fds_after is not None:
            failures += judge.judge_fds(self.base_fds, fds_after, peak_fds, a.fd_slack, fd_ceiling)

        # RSS: see bench/README.md, Soak, for where these come from.
        slope_limit = a.churn_rate * 60 * a.leak_bytes / 1024
        rss_ceiling = self.base_rss + conns * 32 + a.slow * 2 * 65536 // 1024 + 16 * 1024
        load = [(s["t_s"], s["rss_kib"]) for s in self.samples if s["phase"] == "load"]
        hwm = max((s["hwm_kib"] for s in self.samples), default=0)
        rss_fail, slope, peak_rss = judge.judge_rss(load, 0.0, t_load_end, slope_limit, rss_ceiling, hwm)
        failures += rss_fail

        summary = {
            "duration_s": a.duration, "load_s": round(t_load_end, 1),
            "idle": {"fds": self.base_fds, "rss_kib": self.base_rss},
            "after": {"fds": fds_after, "rss_kib": self.samples[-1]["rss_kib"] if self.samples else None},
            "peak": {"fds": peak_fds, "rss_kib": peak_rss}, "fd_ceiling": fd_ceiling,
            "rss_slope_kib_min": round(slope, 1), "rss_slope_limit_kib_min": slope_limit,
            "rss_ceiling_kib": rss_ceiling,
            "server_cpu_s": round(self.proc.last_cpu, 1),
            "server_counts": self.stats, "server_log": dict(self.log_events),
            "python": {"ok": dict(self.counts.ok), "errors": dict(self.counts.errors)},
            "fanout": dict(self.fan),
            "stable": {k: (self.results.get("stable") or {}).get(k) for k in ("connected", "survived", "pings")},
            "churn": {k: (self.results.get("churn") or {}).get(k) for k in ("opened", "closed_clean", "sent", "received")},
            "failures": failures, "verdict": "FAIL" if failures else "PASS",
        }
        print("soak: " + json.dumps(summary, indent=1, sort_keys=True), flush=True)
        print(f"soak: descriptors idle {self.base_fds}, after {fds_after} (slack {a.fd_slack}), "
              f"peak {peak_fds} (ceiling {fd_ceiling}); RSS idle {self.base_rss} KiB, peak {peak_rss} KiB "
              f"(ceiling {rss_ceiling}), slope over the second half {slope:.0f} KiB/min "
              f"(limit {slope_limit:.0f})", flush=True)
        for f in failures:
            print(f"soak: FAIL {f}", flush=True)
        print(f"soak: {summary['verdict']}", flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"summary": summary, "samples": self.samples}, f, indent=1)
        return not failures


async def amain(args):
    soak = Soak(args)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, main.cancel)
    ok = False
    try:
        # Hard deadline: whatever hangs, the run ends.
        ok = await asyncio.wait_for(soak.run(), args.duration + 120)
    except asyncio.TimeoutError:
        print("soak: FAIL the run overran its deadline", flush=True)
    except asyncio.CancelledError:
        print("soak: interrupted", flush=True)
    finally:
        soak.kill_children()
        if soak.load_task:  # interrupted: end the clients quietly
            soak.load_task.cancel()
            await asyncio.gather(soak.load_task, return_exceptions=True)
        if ok:
            shutil.rmtree(soak.tmp, ignore_errors=True)
        else:  # what the server logged is the first thing to read
            print(f"soak: the server's log is kept in {soak.tmp}/server.log", flush=True)
    return ok


def main():
    args = parse_args()
    ok = asyncio.run(amain(args))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
