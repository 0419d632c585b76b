#!/usr/bin/python3
"""permessage-deflate cost, measured on wsgate-echo alone (loopback only,
bounded in time; Debian's python3-websockets as the client):

  memory  RSS per connection of N connections that each sent one chat-like
          message, for: compression off, on with the client keeping its
          context (the browser default), on with client_no_context_takeover.
  cpu     server CPU time (utime+stime from /proc) per echoed message for
          JSON chat messages of several sizes, compression off and on, plus
          the bytes on the wire per message both ways.

  bench/deflate/run.py BUILD_DIR [--connections N] [--messages M]

Prints one JSON line per measurement. Use a Release build for honest figures:
  cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release && cmake --build build/release
"""
import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import time
import zlib

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

TICKS = os.sysconf("SC_CLK_TCK")


def chat_message(size, seq):
    """A JSON chat event padded to about `size` bytes (typical real-time payload)."""
    base = {"type": "message", "room": "general", "seq": seq, "user": f"user{seq % 97}",
            "ts": 1764000000000 + seq, "text": ""}
    words = ["hello", "everyone", "the", "game", "starts", "at", "nine", "see", "you", "there"]
    text = []
    while len(json.dumps(base)) + len(" ".join(text)) < size:
        text.append(words[(seq + len(text)) % len(words)])
    base["text"] = " ".join(text)
    return json.dumps(base)[:max(size, 1)]


class Echo:
    def __init__(self, build, *sets):
        args = [os.path.join(build, "examples", "wsgate-echo"), "--host", "127.0.0.1", "--port", "0"]
        for s in sets:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening on ws://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.stop()
            raise SystemExit(f"wsgate-echo did not start: {line!r}")
        self.url = f"ws://127.0.0.1:{m.group(1)}/"

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def client_kwargs(mode):
    kw = {"ping_interval": None, "max_size": None, "open_timeout": 20}
    if mode == "off":
        kw["compression"] = None
    elif mode == "client_no_context_takeover":
        kw["compression"] = None
        kw["extensions"] = [ClientPerMessageDeflateFactory(client_no_context_takeover=True)]
    return kw  # "takeover": websockets' default offer


async def memory(build, n, mode):
    server = Echo(build, f"compression.enabled={'false' if mode == 'off' else 'true'}",
                  f"limits.max_connections={n + 100}", "log.level=warn")
    try:
        await asyncio.sleep(0.3)
        before = server.rss_kib()
        conns = []
        for i in range(0, n, 200):
            batch = await asyncio.gather(*(websockets.connect(server.url, **client_kwargs(mode))
                                           for _ in range(min(200, n - i))))
            conns += batch
        msg = chat_message(512, 1)
        for ws in conns:
            await ws.send(msg)
        for ws in conns:
            assert await asyncio.wait_for(ws.recv(), 20) == msg
        await asyncio.sleep(0.5)
        after = server.rss_kib()
        await asyncio.gather(*(ws.close() for ws in conns))
        return {"bench": "memory", "compression": mode, "connections": n,
                "rss_kib_per_conn": round((after - before) / n, 2)}
    finally:
        server.stop()


async def cpu(build, size, messages, enabled):
    server = Echo(build, f"compression.enabled={'true' if enabled else 'false'}", "log.level=warn")
    try:
        kw = client_kwargs("takeover" if enabled else "off")
        # Built before connecting: a client busy for a minute would miss the
        # server's pings and be dropped (heartbeat.pong_wait_ms).
        distinct = [chat_message(size, i) for i in range(256)]
        msgs = [distinct[i % len(distinct)] for i in range(messages)]
        async with websockets.connect(server.url, **kw) as ws:
            await ws.send(msgs[0])
            await ws.recv()
            t0 = server.cpu_s()
            start = time.monotonic()
            window = 32
            sent = received = 0
            while received < messages:
                while sent < messages and sent - received < window:
                    await ws.send(msgs[sent])
                    sent += 1
                got = await asyncio.wait_for(ws.recv(), 20)
                assert got == msgs[received]
                received += 1
            elapsed = time.monotonic() - start
            used = server.cpu_s() - t0
        if enabled:  # what the server sends: level 1, no context takeover
            c = zlib.compressobj(1, zlib.DEFLATED, -15)
            wire_out = len(c.compress(msgs[1].encode()) + c.flush(zlib.Z_SYNC_FLUSH)) - 4
        else:
            wire_out = len(msgs[1].encode())
        return {"bench": "cpu", "compression": enabled, "message_bytes": len(msgs[1]),
                "messages": messages, "server_cpu_us_per_msg": round(used * 1e6 / messages, 2),
                "server_to_client_payload_bytes": wire_out, "client_wall_s": round(elapsed, 2),
                "note": "server CPU per echoed message (inflate + deflate when on)"}
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--messages", type=int, default=20000)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.connections + 200)), hard))
    for mode in ("off", "takeover", "client_no_context_takeover"):
        print(json.dumps(asyncio.run(memory(a.build, a.connections, mode))), flush=True)
    for size in (128, 512, 2048, 16384):
        for enabled in (False, True):
            print(json.dumps(asyncio.run(cpu(a.build, size, a.messages, enabled))), flush=True)


if __name__ == "__main__":
    main()
