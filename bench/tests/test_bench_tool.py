#!/usr/bin/python3
"""Tests of wsgate-bench itself: each mode for a second or two against real
servers on 127.0.0.1 port 0, its JSON parsed and checked for sane values.

    test_bench_tool.py --bench wsgate-bench --echo wsgate-echo \
        --server wsgate-bench-server [--lws bench-lws-baseline]

Counts are checked on both sides: wsgate-echo logs one JSON "close" event per
connection with its message counts (log.level=info), the bench server prints
its totals when it stops. Exit status 0 when every check passed.
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

FAILURES = []
SLOW = 3.0 if os.environ.get("WSGATE_SANITIZE") else 1.0  # ASan builds run slower


def check(cond, what):
    if cond:
        print(f"  ok   {what}")
    else:
        print(f"  FAIL {what}")
        FAILURES.append(what)
    return cond


class Server:
    """A server process that prints 'listening on ws://HOST:PORT/' when ready."""

    def __init__(self, argv):
        self.argv = argv
        # The log goes to a file: a pipe nobody reads would fill and stall the server.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            self.log.seek(0)
            raise RuntimeError(f"{argv[0]} did not start: {line!r} {self.log.read()}")
        self.url = line.split()[-1]
        self.stdout = self.stderr = ""

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.stdout, _ = self.proc.communicate(timeout=30 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stdout, _ = self.proc.communicate()
        self.log.seek(0)
        self.stderr = self.log.read()
        self.log.close()
        return self.proc.returncode

    def events(self, name):
        out = []
        for line in self.stderr.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == name:
                out.append(e)
        return out

    def exit_stats(self):
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        return {}


def bench(args, mode, url, *extra, expect_rc=0):
    argv = [args.bench, mode, "--url", url, *extra]
    print("$ " + " ".join(argv))
    budget = 60 * SLOW
    r = subprocess.run(argv, capture_output=True, text=True, timeout=budget)
    if r.returncode != expect_rc:
        print(r.stderr[-3000:])
    check(r.returncode == expect_rc, f"{mode}: exit status {r.returncode} (want {expect_rc})")
    if expect_rc not in (0, 1):
        return None, r
    try:
        out = json.loads(r.stdout)
    except ValueError:
        check(False, f"{mode}: stdout is one JSON object: {r.stdout[:200]!r}")
        return None, r
    return out, r


def percentiles_ordered(p, what):
    keys = ["min", "p50", "p90", "p99", "p99.9", "max"]
    vals = [p[k] for k in keys]
    check(all(vals[i] <= vals[i + 1] for i in range(len(vals) - 1)),
          f"{what}: percentiles ordered {dict(zip(keys, vals))}")
    check(p["count"] > 0 and p["min"] > 0, f"{what}: {p['count']} samples, min {p['min']} us > 0")


def test_echo(args):
    print("echo against wsgate-echo (binary 64 B, 4 in flight)")
    srv = Server([args.echo, "--host", "127.0.0.1", "--port", "0", "--set", "log.level=info"])
    out, r = bench(args, "echo", srv.url, "--connections", "20", "--window", "4", "--size", "64",
                   "--duration", "2", "--warmup", "0.5", "--server-pid", str(srv.proc.pid))
    srv.stop()
    if not out:
        return
    closes = srv.events("close")
    check(out["connected"] == 20 and out["failed"] == 0, f"20 connected, none failed ({out['failures']})")
    check(out["sent"] > 1000, f"sent {out['sent']} messages")
    check(out["sent"] == out["received"], f"sent {out['sent']} == received {out['received']}")
    check(out["lost"] == 0 and out["mismatched"] == 0 and out["errors"] == 0,
          f"no lost ({out['lost']}), mismatched ({out['mismatched']}) or errors ({out['errors']})")
    check(len(closes) == 20, f"server logged 20 closes ({len(closes)})")
    check(sum(c["msgs_in"] for c in closes) == out["sent"],
          f"server msgs_in {sum(c['msgs_in'] for c in closes)} == bench sent {out['sent']}")
    check(sum(c["msgs_out"] for c in closes) == out["received"],
          f"server msgs_out {sum(c['msgs_out'] for c in closes)} == bench received {out['received']}")
    check(all(c["cause"] == "peer" and c["code"] == 1000 for c in closes), "every close was the client's 1000")
    check(out["messages_per_s"] > 0 and abs(out["duration_s"] - 1.5) < 0.01,
          f"{out['messages_per_s']} msg/s over the 1.5 s window")
    check(out["rtt_us"]["count"] == out["window_received"] <= out["received"],
          f"one RTT sample per message in the window ({out['rtt_us']['count']})")
    percentiles_ordered(out["rtt_us"], "rtt_us")
    s = out.get("server", {})
    check(s.get("cpu_s_window", 0) > 0 and s.get("cpu_us_per_message", 0) > 0,
          f"server CPU sampled: {s.get('cpu_s_window')} s, {s.get('cpu_us_per_message')} us/msg")
    check(s.get("rss_kib_loaded", 0) >= s.get("rss_kib_before", 1) > 0, "server memory sampled")


def test_echo_text_large(args):
    print("echo, text 4 KiB, 2 processes x 2 threads")
    srv = Server([args.echo, "--host", "127.0.0.1", "--port", "0", "--set", "log.level=warn"])
    out, _ = bench(args, "echo", srv.url, "--connections", "8", "--window", "2", "--size", "4096",
                   "--text", "--duration", "1", "--processes", "2", "--threads", "2", "--quiet")
    srv.stop()
    if not out:
        return
    check(out["client"]["processes"] == 2 and out["client"]["threads"] == 2, "ran 2 processes x 2 threads")
    check(out["connected"] == 8 and out["sent"] == out["received"] > 0,
          f"8 connected, sent {out['sent']} == received {out['received']}")
    check(out["mismatched"] == 0 and out["errors"] == 0, "every echo matched its message")
    percentiles_ordered(out["rtt_us"], "rtt_us")


def test_connect(args):
    print("connect against wsgate-echo, from two source addresses")
    heartbeat = "heartbeat.ping_interval_ms" in subprocess.run(
        [args.echo, "--help"], capture_output=True, text=True).stdout
    extra = ["--set", "heartbeat.ping_interval_ms=300", "--set", "heartbeat.pong_wait_ms=5000"] if heartbeat else []
    srv = Server([args.echo, "--host", "127.0.0.1", "--port", "0", "--set", "log.level=info", *extra])
    out, _ = bench(args, "connect", srv.url, "--connections", "200", "--duration", "1.5",
                   "--rate", "2000", "--sources", "127.0.0.2-127.0.0.3", "--settle", "0.2",
                   "--server-pid", str(srv.proc.pid))
    srv.stop()
    if not out:
        return
    opens = srv.events("open")
    check(out["connected"] == 200 and out["survived"] == 200 and out["failed"] == 0,
          f"200 connected and survived ({out['failures']})")
    check(out["connect_rate_per_s"] > 0, f"connect rate {out['connect_rate_per_s']}/s")
    check(len(opens) == 200, f"server logged 200 opens ({len(opens)})")
    peers = {o["peer"] for o in opens}
    check(peers == {"127.0.0.2", "127.0.0.3"}, f"connections came from both sources {sorted(peers)}")
    if heartbeat:
        check(out["pings"] > 0, f"server pings answered with pongs ({out['pings']} pings)")
    check(len(srv.events("close")) == 200 and all(c["cause"] == "peer" for c in srv.events("close")),
          "every connection survived the hold (no pong timeout) and closed cleanly")
    percentiles_ordered(out["handshake_us"], "handshake_us")
    s = out.get("server", {})
    check(s.get("kib_per_connection", 0) > 0, f"server memory per connection {s.get('kib_per_connection')} KiB")


def test_fanout(args):
    print("fanout against wsgate-bench-server (broadcast from /pub)")
    srv = Server([args.server, "--host", "127.0.0.1", "--port", "0"])
    base = srv.url.rstrip("/")
    out, _ = bench(args, "fanout", base + "/sub", "--pub-url", base + "/pub", "--connections", "50",
                   "--publishers", "2", "--rate", "400", "--duration", "2",
                   "--server-pid", str(srv.proc.pid))
    srv.stop()
    if not out:
        return
    st = srv.exit_stats()
    check(out["subscribers"] == 50 and out["publishers"] == 2, "50 subscribers and 2 publishers")
    check(700 <= out["published"] <= 900, f"published {out['published']} at 400/s for 2 s")
    check(st.get("broadcasts") == out["published"],
          f"server broadcasts {st.get('broadcasts')} == bench published {out['published']}")
    check(out["expected"] == out["published"] * 50, "expected = published x subscribers")
    check(out["delivered"] == out["expected"] and out["lost"] == 0 and out["duplicates"] == 0,
          f"delivered {out['delivered']} of {out['expected']}, lost {out['lost']}, dup {out['duplicates']}")
    check(out["errors"] == 0, f"errors {out['errors']}")
    check(st.get("opened") == 52, f"server opened 52 connections ({st.get('opened')})")
    percentiles_ordered(out["latency_us"], "latency_us")
    check(out.get("server", {}).get("cpu_us_per_delivery", 0) > 0, "server CPU per delivery reported")


def fanout_server(args, *extra):
    srv = Server([args.server, "--host", "127.0.0.1", "--port", "0", *extra])
    base = srv.url.rstrip("/")
    return srv, base + "/sub", base + "/pub"


def test_fanout_topics(args):
    print("fanout --topics against wsgate-bench-server --topics (wsg_server_publish)")
    srv, sub, pub = fanout_server(args, "--topics")
    out, _ = bench(args, "fanout", sub, "--pub-url", pub, "--connections", "40", "--topics", "4",
                   "--publishers", "2", "--rate", "400", "--duration", "2", "--warmup", "0.5",
                   "--server-pid", str(srv.proc.pid))
    srv.stop()
    if not out:
        return
    st = srv.exit_stats()
    check(out["subscribers"] == 40 and out["topics"] == 4 and out["config"]["topics"] == 4,
          f"40 subscribers over 4 topics ({out['subscribers']}, {out.get('topics')})")
    check(out["subscribers_per_topic"] == {"min": 10, "max": 10},
          f"10 subscribers on each topic {out['subscribers_per_topic']}")
    check(st.get("subscribed") == 40, f"server subscribed 40 connections at open ({st.get('subscribed')})")
    check(700 <= out["published"] <= 900, f"published {out['published']} at 400/s for 2 s")
    check(st.get("publishes") == out["published"] and st.get("broadcasts") == 0,
          f"server published {st.get('publishes')} to topics (broadcast {st.get('broadcasts')}) "
          f"== bench published {out['published']}")
    # Each message reaches the 10 subscribers of its topic only.
    check(out["expected"] == out["published"] * 10, f"expected {out['expected']} = published x 10")
    check(out["delivered"] == out["expected"] and out["received"] == out["delivered"],
          f"delivered {out['delivered']} of {out['expected']}, received {out['received']}")
    check(out["lost"] == 0 and out["duplicates"] == 0 and out["mismatched"] == 0 and out["errors"] == 0,
          f"no lost ({out['lost']}), duplicate ({out['duplicates']}) or misrouted ({out['mismatched']}) message")
    percentiles_ordered(out["latency_us"], "latency_us")
    # The warm-up (0.5 s, about a quarter of the messages) is left out of
    # the rate and of the latencies.
    check(abs(out["duration_s"] - 1.5) < 0.01 and 0.6 < out["window_delivered"] / out["delivered"] < 0.9,
          f"rate over the 1.5 s after the warm-up ({out['window_delivered']} of {out['delivered']} deliveries)")
    check(0.6 < out["latency_us"]["count"] / out["delivered"] < 0.9,
          f"latency of the messages published after the warm-up ({out['latency_us']['count']})")
    check(out.get("server", {}).get("cpu_us_per_delivery", 0) > 0, "server CPU per delivery reported")

    # A server that broadcasts what should go to one topic: every subscriber
    # gets the other topics' messages too, and the tool says so.
    print("fanout --topics against a server without --topics (broadcasts them)")
    srv, sub, pub = fanout_server(args)
    out, _ = bench(args, "fanout", sub, "--pub-url", pub, "--connections", "8", "--topics", "4",
                   "--rate", "200", "--duration", "1", "--drain-timeout", "1", "--quiet")
    srv.stop()
    if out:
        check(out["received"] == out["published"] * 8 and out["mismatched"] == out["received"] - out["delivered"] > 0
              and out["delivered"] == out["expected"] and out["errors"] >= out["mismatched"],
              f"messages of other topics counted as mismatched ({out['mismatched']} of {out['received']}) "
              f"and as errors ({out['errors']})")


def test_fanout_slow(args):
    print("fanout --slow: 2 of 20 subscribers stop reading (queue limit 64 KiB)")
    policy = []
    if "limits.queue_policy" in subprocess.run([args.server, "--list-options"], capture_output=True,
                                               text=True).stdout.split():
        policy = ["--set", "limits.queue_policy=close"]
    srv, sub, pub = fanout_server(args, "--topics", "--set", "limits.max_queue_bytes=65536", *policy)
    # 200 messages/s of 1 KiB per subscriber: a stalled queue passes 64 KiB
    # within a second, and the server closes it with 1013 (policy close).
    out, _ = bench(args, "fanout", sub, "--pub-url", pub, "--connections", "20", "--topics", "2",
                   "--slow", "2", "--rate", "400", "--size", "1024", "--duration", "2.5",
                   "--server-pid", str(srv.proc.pid))
    srv.stop()
    if not out:
        return
    slow = out.get("slow", {})
    check(out["subscribers"] == 18 and slow.get("subscribers") == 2,
          f"18 subscribers counted, 2 slow apart ({out['subscribers']}, {slow.get('subscribers')})")
    check(out["delivered"] == out["expected"] == out["published"] * 9 and out["errors"] == 0,
          f"the reading ones got all {out['expected']} ({out['delivered']}), errors {out['errors']}")
    check(slow.get("expected") == out["published"] and slow.get("dropped") == 2
          and out["failures"].get("slow subscriber closed by server (1013)") == 2,
          f"both slow subscribers closed by the server with 1013 ({slow}, {out['failures']})")
    # What the kernel held before the stall and the server's close: a part.
    check(0 < slow.get("delivered", 0) < slow.get("expected", 0) / 2 and slow.get("lost") ==
          slow.get("expected", 0) - slow.get("delivered", 0),
          f"slow ones got what the kernel held and lost the rest ({slow.get('delivered')} of {slow.get('expected')})")
    check(out["latency_us"]["count"] == out["delivered"], "latencies are the reading subscribers' only")
    backpressure = [e for e in srv.events("backpressure")]
    check(len(backpressure) == 2, f"server logged 2 backpressure closes ({len(backpressure)})")


def test_server_options(args):
    print("wsgate-bench-server --describe-option")
    r = subprocess.run([args.server, "--describe-option", "limits.max_queue_bytes"], capture_output=True, text=True)
    d = json.loads(r.stdout) if r.returncode == 0 else {}
    check(d.get("name") == "limits.max_queue_bytes" and d.get("type") == "int" and ".." in d.get("range", "")
          and d.get("doc"), f"an int option described: {d}")
    enum = "limits.queue_policy" if "limits.queue_policy" in subprocess.run(
        [args.server, "--list-options"], capture_output=True, text=True).stdout.split() else "log.level"
    r = subprocess.run([args.server, "--describe-option", enum], capture_output=True, text=True)
    d = json.loads(r.stdout) if r.returncode == 0 else {}
    check(d.get("type") == "enum" and len(d.get("range", "").split("|")) >= 2 and d.get("default") in d["range"].split("|"),
          f"an enum option's values: {d}")
    r = subprocess.run([args.server, "--describe-option", "no.such"], capture_output=True, text=True)
    check(r.returncode == 2 and "no.such" in r.stderr, f"unknown option: exit 2 with a message ({r.stderr.strip()})")


def test_churn(args):
    print("churn against wsgate-echo")
    srv = Server([args.echo, "--host", "127.0.0.1", "--port", "0", "--set", "log.level=info"])
    out, _ = bench(args, "churn", srv.url, "--connections", "20", "--rate", "100", "--duration", "2",
                   "--messages", "2")
    srv.stop()
    if not out:
        return
    opens, closes = srv.events("open"), srv.events("close")
    check(out["opened"] >= 150, f"opened {out['opened']} connections at 100/s for 2 s")
    check(out["closed_clean"] == out["opened"] and out["failed"] == 0 and out["errors"] == 0,
          f"each closed cleanly ({out['closed_clean']}), failures {out['failures']}")
    check(out["sent"] == out["received"] == 2 * out["opened"], f"2 messages echoed on each ({out['received']})")
    check(len(opens) == out["opened"] == len(closes), f"server opened and closed {len(opens)}/{len(closes)}")
    check(sum(c["msgs_in"] for c in closes) == out["sent"], "server msgs_in == bench sent")
    check(out["opens_per_s"] > 50, f"{out['opens_per_s']} opens/s")
    percentiles_ordered(out["handshake_us"], "handshake_us")


def echo_supports_tls(args):
    r = subprocess.run([args.echo, "--help"], capture_output=True, text=True)
    return "tls.cert_file" in r.stdout


def test_wss(args, tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True, text=True)
    if not check(r.returncode == 0, "openssl made a test certificate"):
        print(r.stderr)
        return
    if echo_supports_tls(args):
        print("wss echo against wsgate-echo with TLS")
        argv = [args.echo, "--host", "127.0.0.1", "--port", "0", "--set", "log.level=warn",
                "--set", f"tls.cert_file={cert}", "--set", f"tls.key_file={key}"]
    elif args.lws:
        print("wss echo against bench-lws-baseline --tls (wsgate-echo has no TLS)")
        argv = [args.lws, "--tls", cert, key]
    else:
        print("wss: no TLS server available: skipped")
        return
    srv = Server(argv)
    check(srv.url.startswith("wss://"), f"server speaks wss ({srv.url})")
    out, _ = bench(args, "echo", srv.url, "--connections", "4", "--window", "4", "--duration", "1",
                   "--ca", cert, "--quiet")
    srv.stop()
    if out:
        check(out["config"]["tls"] and out["connected"] == 4 and out["sent"] == out["received"] > 0
              and out["errors"] == 0, f"4 wss connections echoed {out['received']} messages (verified cert)")
    srv = Server(argv)
    out, _ = bench(args, "connect", srv.url, "--connections", "1", "--duration", "0", "--quiet",
                   "--ca", os.path.join(tmp, "missing.pem"), expect_rc=2)
    srv.stop()


def test_headers_and_masking(args):
    """A Python websockets server records the request and refuses unmasked frames."""
    try:
        import websockets
        import websockets.server
    except ImportError:
        print("headers: python3 websockets missing: skipped")
        return
    print("Authorization header, query token and masking against Python websockets")
    seen = []
    ready = threading.Event()
    state = {}

    async def handler(ws, path=None):
        async for m in ws:
            await ws.send(m)

    async def process_request(path, headers):
        seen.append((path, headers.get("Authorization"), headers.get("Origin"), headers.get("X-Test")))
        return None

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0, process_request=process_request,
                                    compression=None) as server:
            state["port"] = server.sockets[0].getsockname()[1]
            state["loop"] = asyncio.get_running_loop()
            state["stop"] = asyncio.Event()
            ready.set()
            await state["stop"].wait()

    t = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    t.start()
    ready.wait(10)
    url = f"ws://127.0.0.1:{state['port']}/room?x=1"
    out, _ = bench(args, "echo", url, "--connections", "2", "--duration", "0.5", "--token", "s3cr/t",
                   "--origin", "http://example.test", "--header", "X-Test: yes", "--quiet")
    out2, _ = bench(args, "echo", url, "--connections", "1", "--duration", "0.5", "--token", "s3cr/t",
                    "--token-query", "access_token", "--quiet")
    state["loop"].call_soon_threadsafe(state["stop"].set)
    t.join(10)
    check(len(seen) == 3, f"3 upgrade requests seen ({len(seen)})")
    if len(seen) == 3:
        check(seen[0] == ("/room?x=1", "Bearer s3cr/t", "http://example.test", "yes"),
              f"header token, origin and extra header sent: {seen[0]}")
        check(seen[2][0] == "/room?x=1&access_token=s3cr%2Ft" and seen[2][1] is None,
              f"query token sent instead of the header: {seen[2]}")
    # websockets closes with 1002 on an unmasked client frame: a clean run proves masking.
    for o in (out, out2):
        if o:
            check(o["errors"] == 0 and o["sent"] == o["received"] > 0 and o["close_timeouts"] == 0,
                  f"server accepted every (masked) frame: sent {o['sent']} received {o['received']}")


def test_command_line(args):
    print("command line")
    r = subprocess.run([args.bench, "--help"], capture_output=True, text=True)
    check(r.returncode == 0, "--help exits 0")
    flags = ["--url", "--pub-url", "--connections", "--duration", "--warmup", "--window", "--size",
             "--text", "--rate", "--publishers", "--messages", "--concurrency", "--threads",
             "--processes", "--sources", "--header", "--token", "--token-query", "--origin", "--ca",
             "--connect-timeout", "--setup-timeout", "--drain-timeout", "--close-timeout",
             "--server-pid", "--settle", "--allow-remote", "--quiet", "--help", "--topics", "--slow"]
    missing = [f for f in flags if f not in r.stdout]
    check(not missing, f"--help explains every flag (missing: {missing})")
    for argv, what in [(["echo"], "missing --url"),
                       (["echo", "--url", "ws://10.1.2.3:9/"], "non-loopback target refused"),
                       (["echo", "--url", "http://127.0.0.1:9/"], "bad scheme"),
                       (["nosuchmode", "--url", "ws://127.0.0.1:9/"], "unknown mode"),
                       (["echo", "--url", "ws://127.0.0.1:9/", "--connections", "0"], "0 connections"),
                       (["echo", "--url", "ws://127.0.0.1:9/", "--bogus", "1"], "unknown flag"),
                       (["fanout", "--url", "ws://127.0.0.1:9/", "--size", "8"], "fanout payload too small"),
                       (["fanout", "--url", "ws://127.0.0.1:9/", "--topics", "2", "--size", "24"],
                        "topic payload too small"),
                       (["fanout", "--url", "ws://127.0.0.1:9/", "--topics", "0"], "0 topics"),
                       (["fanout", "--url", "ws://127.0.0.1:9/", "--connections", "4", "--slow", "4"],
                        "no subscriber left reading"),
                       (["echo", "--url", "ws://127.0.0.1:9/", "--topics", "2"], "--topics outside fanout"),
                       (["echo", "--url", "ws://127.0.0.1:9/", "--slow", "1"], "--slow outside fanout")]:
        r = subprocess.run([args.bench, *argv], capture_output=True, text=True, timeout=10)
        check(r.returncode == 2 and r.stderr.startswith("wsgate-bench:"), f"{what}: exit 2 with a message")
    # Nothing listens: every connection fails, by reason, and the run still ends.
    out, _ = bench(args, "connect", "ws://127.0.0.1:1/", "--connections", "5", "--duration", "0",
                   "--quiet", expect_rc=1)
    if out:
        check(out["failed"] == 5 and out["failures"].get("connect: ECONNREFUSED") == 5,
              f"refused connections counted by reason: {out['failures']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--echo", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--lws")
    ap.add_argument("--only", help="comma-separated test names")
    args = ap.parse_args()
    tests = {"command_line": test_command_line, "echo": test_echo, "echo_text": test_echo_text_large,
             "connect": test_connect, "fanout": test_fanout, "fanout_topics": test_fanout_topics,
             "fanout_slow": test_fanout_slow, "server_options": test_server_options, "churn": test_churn,
             "headers": test_headers_and_masking}
    only = set(args.only.split(",")) if args.only else None
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="wsgate-bench-test-")
    try:
        for name, fn in tests.items():
            if only is None or name in only:
                fn(args)
        if (only is None or "wss" in only) and shutil.which("openssl"):
            test_wss(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failure(s) in {time.time() - t0:.1f} s")
    for f in FAILURES:
        print("  " + f)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
