"""Delivery policies and backpressure from Python, with real clients that
stop reading: Connection.queue_policy (names from the header's list),
queued_bytes and messages_dropped, @server.on_drain once per crossing.

How a queue is filled deterministically (as tests/core/test_delivery.c
does): the client stops reading (a small receive buffer, and websockets
keeps at most one message); the test sends 32 KiB fillers one at a time
until the server's own queue holds something: from then on the kernel
takes nothing more and every further message stays in the queue."""

import asyncio
import logging
import socket
import time

import pytest

import wsgate
from conftest import connect, recv, run, url_of

FILLER = b"z" * 32768
TEXT = 1000  # payload of one numbered text: 1,004 bytes framed
TEXT_FRAMED = 1004

# No pings (they would add control frames to the queue) and no write
# deadline (a client that stops reading is kept).
QUIET = {"heartbeat.ping_interval_ms": 0, "heartbeat.write_wait_ms": 0,
         "server.shutdown_timeout_ms": 1000}


def numbered(i):
    return f"m{i:03d}".ljust(TEXT, ".")


async def until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)


async def stalled_client(port, path="/"):
    """A client that reads only when the test calls recv(): a small kernel
    receive buffer, and websockets holds at most one message."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await connect(f"ws://127.0.0.1:{port}{path}", sock=sock, max_queue=1,
                         read_limit=4096)


async def fill_until_stuck(conn):
    """Fillers until the server's queue holds one; returns (fillers sent,
    bytes then queued)."""
    for sent in range(1, 4001):
        out = conn.messages_out
        conn.send(FILLER)
        await until(lambda: conn.messages_out > out)
        await asyncio.sleep(0.003)
        queued = conn.queued_bytes
        if queued > 0:
            await asyncio.sleep(0.03)  # still there: nothing is being written
            assert conn.queued_bytes == queued
            return sent, queued
    raise AssertionError("the queue never filled")


async def read_all(ws, until_text):
    """Reads until the text `until_text`: (fillers, numbered texts in order)."""
    fillers, texts = 0, []
    while True:
        message = await recv(ws)
        if message == until_text:
            return fillers, texts
        if isinstance(message, bytes):
            fillers += 1
        else:
            assert message.startswith("m") and len(message) == TEXT, message[:20]
            texts.append(int(message[1:4]))


def opened_conn(server):
    conns = []
    server.on_open(conns.append)
    return conns


# ---------------------------------------------------------------- policies


def test_queue_policy_is_read_and_set_by_name(make_server):
    server = make_server(options=dict(QUIET, **{"limits.queue_policy": "drop_oldest"}))
    conns = opened_conn(server)
    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            await until(lambda: conns)
            conn = conns[0]
            # The server's policy until the connection gets its own.
            assert conn.queue_policy == "drop_oldest"
            info = conn.info()
            assert info["queue_policy"] == "drop_oldest"
            assert info["queued_bytes"] == 0 and info["messages_dropped"] == 0
            for name in wsgate.QUEUE_POLICIES:
                conn.queue_policy = name
                await until(lambda: conn.queue_policy == name)
            conn.queue_policy = "drop_newest"
            await until(lambda: conn.queue_policy == "drop_newest")
            for bad in ("nope", "", "CLOSE", "drop-newest", None, 2):
                with pytest.raises(ValueError) as info:
                    conn.queue_policy = bad
                assert isinstance(info.value, wsgate.InvalidArgumentError)
                for name in wsgate.QUEUE_POLICIES:
                    assert name in str(info.value)
            # None of the bad ones changed it.
            await asyncio.sleep(0.02)
            assert conn.queue_policy == "drop_newest"
            await ws.close()
            await until(lambda: conn.closed)
            with pytest.raises(wsgate.NotFoundError):
                conn.queue_policy = "close"
    run(body())


def test_drop_newest_counts_what_a_stalled_client_misses(make_server):
    server = make_server(options=dict(QUIET, **{"limits.max_queue_bytes": 65536}))
    conns = opened_conn(server)
    server.start()

    async def body():
        ws = await stalled_client(server.port)
        try:
            await until(lambda: conns)
            conn = conns[0]
            assert conn.queue_policy == "close"
            conn.queue_policy = "drop_newest"
            await until(lambda: conn.queue_policy == "drop_newest")
            sent, q0 = await fill_until_stuck(conn)
            fit = (65536 - q0) // TEXT_FRAMED
            assert 10 < fit < 100
            out = conn.messages_out
            for i in range(100):
                conn.send(numbered(i))
            await until(lambda: conn.messages_out == out + 100)
            assert conn.messages_dropped == 100 - fit
            assert conn.queued_bytes == q0 + fit * TEXT_FRAMED
            assert conn.info()["messages_dropped"] == 100 - fit
            # The client reads again: the fillers, the texts that fit, in
            # order, and nothing after them.
            conn.send("end")
            fillers, texts = await read_all(ws, "end")
            assert fillers == sent
            assert texts == list(range(fit))
            await until(lambda: conn.queued_bytes == 0)
            assert conn.messages_dropped == 100 - fit
            assert not conn.closed
        finally:
            await ws.close()
    run(body())


# ---------------------------------------------------------------- on_drain


def test_on_drain_runs_once_per_crossing(make_server, caplog):
    caplog.set_level(logging.ERROR, logger="wsgate")
    server = make_server(options=dict(QUIET, **{
        "limits.max_queue_bytes": 1048576, "limits.queue_high_water_bytes": 262144,
        "limits.queue_low_water_bytes": 65536}))
    conns = opened_conn(server)
    drains = []

    @server.on_drain
    def on_drain(conn, queued_bytes):
        drains.append((conn, queued_bytes))
        conn.send("drained")  # sending is allowed here
        if len(drains) == 2:
            raise RuntimeError("drain boom")

    server.start()

    async def body():
        ws = await stalled_client(server.port)
        try:
            await until(lambda: conns)
            conn = conns[0]
            # Below the high-water mark and back: no crossing, no drain.
            sent, _ = await fill_until_stuck(conn)
            conn.send("end")
            fillers, _ = await read_all(ws, "end")
            assert fillers == sent
            await until(lambda: conn.queued_bytes == 0)
            await asyncio.sleep(0.05)
            assert drains == []

            for crossing in (1, 2):
                sent, _ = await fill_until_stuck(conn)
                while conn.queued_bytes <= 262144:
                    out = conn.messages_out
                    conn.send(FILLER)
                    sent += 1
                    await until(lambda: conn.messages_out > out)
                    await asyncio.sleep(0.003)
                assert len(drains) == crossing - 1
                # The client catches up: one drain, with what is left, and
                # what the handler sent comes after everything else.
                fillers, _ = await read_all(ws, "drained")
                assert fillers == sent
                assert len(drains) == crossing
                assert drains[-1][0] is conn
                assert 0 <= drains[-1][1] <= 65536
                conn.send("end")
                assert await read_all(ws, "end") == (0, [])
                await asyncio.sleep(0.05)
                assert len(drains) == crossing
            # The handler's exception was logged; the server kept serving.
            assert "drain boom" in caplog.text and "on_drain" in caplog.text
            assert conn.messages_dropped == 0 and not conn.closed
        finally:
            await ws.close()
    run(body())
