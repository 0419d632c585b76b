"""The soak's Python clients, for what wsgate-bench does not do: client pings,
connections held at the per-IP limit, and handshakes the server must refuse.
asyncio on 127.0.0.x only; every wait has a timeout; each task ends at the
deadline it is given.

Each client kind counts its successes in `ok[kind]` and anything it did not
expect in `errors["kind: what"]`: the soak fails on any error.
"""
import asyncio
import base64
import collections
import os
import time

import websockets

IO_TIMEOUT = 5.0  # one request or frame on loopback; generous for a loaded machine


class Counts:
    def __init__(self):
        self.ok = collections.Counter()
        self.errors = collections.Counter()

    def error(self, kind, what):
        self.errors[f"{kind}: {what}"] += 1


def upgrade_head(host, token, *, method="GET", path="/", version="HTTP/1.1", extra=(),
                 ws_version="13", key=None):
    """An upgrade request; every refused kind changes one thing in it."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"{method} {path} {version}", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             f"Sec-WebSocket-Version: {ws_version}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def refused_kinds(host, token):
    """name -> (request bytes, the status the server must answer). The order of
    the server's checks (README, What the server refuses) decides which status
    a request gets: each request breaks one rule and keeps the others."""
    return {
        "origin": (upgrade_head(host, token, extra=["Origin: https://evil.soak.test"]), 403),
        "token": (upgrade_head(host, "e30.e30.c2ln"), 401),
        "no_token": (upgrade_head(host, None), 401),
        "version": (upgrade_head(host, token, ws_version="8"), 426),
        "method": (upgrade_head(host, token, method="POST"), 405),
        "http10": (upgrade_head(host, token, version="HTTP/1.0"), 400),
        "key": (upgrade_head(host, token, key="c2hvcnQ="), 400),
        "long_url": (upgrade_head(host, token, path="/" + "a" * 9000), 414),
        "headers": (upgrade_head(host, token, extra=[f"X-Pad-{i}: {i}" for i in range(70)]), 431),
        "nul": (upgrade_head(host, token, extra=["X-Bad: a\x00b"]), 400),
    }


async def exchange(host, port, source, request, counts, kind, want):
    """Sends one request, expects status `want` and then the server's close."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0)), IO_TIMEOUT)
        writer.write(request)
        await writer.drain()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await asyncio.wait_for(reader.read(4096), IO_TIMEOUT)
            if not chunk:
                break
            data += chunk
        status = data.split(b" ", 2)[1].decode(errors="replace") if data.startswith(b"HTTP/1.1 ") else None
        if status != str(want):
            counts.error(kind, f"answered {status or repr(data[:40])}, want {want}")
            return
        # Connection: close, then the server ends it: read to EOF.
        while await asyncio.wait_for(reader.read(4096), IO_TIMEOUT):
            pass
        counts.ok[kind] += 1
    except (OSError, asyncio.TimeoutError) as e:
        counts.error(kind, type(e).__name__)
    finally:
        if writer:
            writer.close()


async def refusals(host, port, source, token, rate, deadline, counts):
    """Bad requests in turn, `rate` per second, one at a time."""
    kinds = list(refused_kinds(f"{host}:{port}", token).items())
    i = 0
    start = time.monotonic()
    while time.monotonic() < deadline:
        name, (request, want) = kinds[i % len(kinds)]
        await exchange(host, port, source, request, counts, name, want)
        i += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))


async def stalled_heads(host, port, source, token, concurrency, handshake_timeout, deadline, counts):
    """Slowloris: half a request head, then silence. The server must drop the
    connection after heartbeat.handshake_timeout_ms, without an answer."""
    head = upgrade_head(f"{host}:{port}", token)
    half = head[:len(head) // 2]

    async def one():
        while time.monotonic() + handshake_timeout + IO_TIMEOUT < deadline:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=(source, 0)), IO_TIMEOUT)
                writer.write(half)
                t0 = time.monotonic()
                data = await asyncio.wait_for(reader.read(4096), handshake_timeout + IO_TIMEOUT)
                waited = time.monotonic() - t0
                if data:
                    counts.error("stall", f"answered {data[:40]!r}")
                elif waited < handshake_timeout * 0.9:
                    counts.error("stall", f"dropped after {waited:.1f} s, before the timeout")
                else:
                    counts.ok["stall"] += 1
            except (OSError, asyncio.TimeoutError) as e:
                counts.error("stall", type(e).__name__)
            finally:
                if writer:
                    writer.close()

    await asyncio.gather(*(one() for _ in range(concurrency)))


async def pingers(url, source, token, n, period, size, deadline, counts):
    """n connections, each sending a ping and an echo message every `period` s
    and waiting for the pong and the echo; the library answers server pings."""

    async def one(i):
        try:
            async with websockets.connect(url, extra_headers={"Authorization": f"Bearer {token}"},
                                          local_addr=(source, 0), ping_interval=None,
                                          open_timeout=IO_TIMEOUT, close_timeout=IO_TIMEOUT) as ws:
                seq = 0
                while time.monotonic() < deadline:
                    pong = await ws.ping(seq.to_bytes(4, "big"))
                    await asyncio.wait_for(pong, IO_TIMEOUT)
                    counts.ok["ping"] += 1
                    msg = seq.to_bytes(4, "big") * (size // 4)
                    await ws.send(msg)
                    back = await asyncio.wait_for(ws.recv(), IO_TIMEOUT)
                    if back != msg:
                        counts.error("echo", "reply differs")
                    else:
                        counts.ok["echo"] += 1
                    seq += 1
                    await asyncio.sleep(period)
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
            counts.error("ping", f"{type(e).__name__} {e}"[:80])

    await asyncio.gather(*(one(i) for i in range(n)))


async def per_ip(url, host, port, source, token, limit, period, deadline, counts):
    """Holds `limit` connections from `source` (the per-IP limit) for the whole
    run, and asks for one more every `period` s: each must get 429."""
    held = []
    try:
        for _ in range(limit):
            held.append(await websockets.connect(
                url, extra_headers={"Authorization": f"Bearer {token}"}, local_addr=(source, 0),
                ping_interval=None, open_timeout=IO_TIMEOUT, close_timeout=IO_TIMEOUT))
        counts.ok["held"] = len(held)
        request = upgrade_head(f"{host}:{port}", token)
        while time.monotonic() < deadline:
            await exchange(host, port, source, request, counts, "per_ip", 429)
            await asyncio.sleep(period)
        for ws in held:
            if ws.closed:
                counts.error("held", f"closed by the server ({ws.close_code})")
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        counts.error("held", f"{type(e).__name__} {e}"[:80])
    finally:
        await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
