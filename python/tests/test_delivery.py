"""Delivery policies and backpressure from Python, with real clients that
stop reading: Connection.queue_policy (names from the header's list),
queued_bytes and messages_dropped, @server.on_drain once per crossing, and
wsgate.aio sends that wait while a connection is behind.

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
from wsgate.aio import AsyncServer
from conftest import TIMEOUT, connect, recv, run, url_of

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
    """Fillers until the server's queue holds one that stays (the socket is
    full); returns (fillers sent, bytes then queued)."""
    for sent in range(1, 4001):
        out = conn.messages_out
        conn.send(FILLER)
        await until(lambda: conn.messages_out > out)
        await asyncio.sleep(0.003)
        queued = conn.queued_bytes
        if queued > 0:
            await asyncio.sleep(0.03)
            # Unchanged: nothing is being written. Changed: the server was
            # only slow to write (a loaded machine, ThreadSanitizer), and the
            # socket has room yet: keep filling.
            if conn.queued_bytes == queued:
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


# ---------------------------------------------------------------- wsgate.aio

HIGH, LOW = 262144, 65536
CHUNK = 16384
CHUNK_FRAMED = CHUNK + 4


def make_aio(**options):
    opts = dict(QUIET, **{"limits.max_queue_bytes": 1048576,
                          "limits.queue_high_water_bytes": HIGH,
                          "limits.queue_low_water_bytes": LOW,
                          # Overshooting the queue would drop, visibly.
                          "limits.queue_policy": "drop_newest"})
    opts.update(options)
    return AsyncServer(host="127.0.0.1", port=0, options=opts)


def chunk(i):
    return i.to_bytes(4, "big") + b"c" * (CHUNK - 4)


class QueueWatch:
    """Samples a connection's queue every millisecond while it runs."""

    def __init__(self, conn):
        self.conn = conn
        self.peak = 0
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        while True:
            try:
                self.peak = max(self.peak, self.conn.queued_bytes)
            except wsgate.WsgateError:
                return
            await asyncio.sleep(0.001)

    async def stop(self):
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


async def stalled_until_idle(progress, quiet=0.5):
    """Waits until progress() stops changing for `quiet` seconds."""
    last, since = progress(), time.monotonic()
    deadline = time.monotonic() + TIMEOUT / 2
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "never stalled"
        await asyncio.sleep(0.02)
        now = progress()
        if now != last:
            last, since = now, time.monotonic()


# A producer stops by itself after this many messages (64 MiB): far more than
# the queue limit and the kernel's buffers (a socket's send buffer may grow
# to net.ipv4.tcp_wmem's maximum, 4 MiB by default), so it must have paused.
CAP = 4000


def test_aio_send_waits_while_behind_and_resumes_when_the_client_reads():
    server = make_aio()
    opened = []
    server.on_open(opened.append)

    async def body():
        async with server:
            ws = await stalled_client(server.port)
            await until(lambda: opened)
            conn = opened[0]
            # The AsyncConnection reads and sets the policy too.
            assert conn.queue_policy == "drop_newest"
            conn.queue_policy = "drop_oldest"
            await until(lambda: conn.queue_policy == "drop_oldest")
            with pytest.raises(ValueError):
                conn.queue_policy = "nope"
            conn.queue_policy = "drop_newest"
            await until(lambda: conn.queue_policy == "drop_newest")
            watch = QueueWatch(conn)
            sent = []
            stop = []

            async def producer():
                for i in range(CAP):
                    if stop:
                        return
                    await conn.send(chunk(i))
                    sent.append(i)

            task = asyncio.ensure_future(producer())
            # The client reads nothing: the producer is paused.
            await stalled_until_idle(lambda: len(sent))
            assert not task.done() and len(sent) < CAP
            assert HIGH - CHUNK_FRAMED < conn.queued_bytes <= HIGH + CHUNK_FRAMED
            assert server._pacers[conn.id].waiting == 1
            stop.append(True)  # the waiting send is the last one
            # The client reads: every message, in order, none dropped.
            got = []
            while not task.done() or len(got) < len(sent):
                message = await recv(ws)
                got.append(int.from_bytes(message[:4], "big"))
            await task
            assert got == list(range(len(sent)))
            await watch.stop()
            assert watch.peak <= HIGH + CHUNK_FRAMED
            assert conn.messages_dropped == 0 and conn.messages_out == len(sent)
            assert server._pacers[conn.id].waiting == 0
            await ws.close()
            await until(lambda: conn.closed)
            assert conn.id not in server._pacers
    run(body())


def test_aio_many_concurrent_senders_are_paced_and_none_leaks():
    server = make_aio()
    opened = []
    server.on_open(opened.append)
    tasks_n = 20

    async def body():
        async with server:
            ws = await stalled_client(server.port)
            await until(lambda: opened)
            conn = opened[0]
            watch = QueueWatch(conn)
            sent = {t: [] for t in range(tasks_n)}
            stop = []

            async def sender(t):
                for k in range(CAP // tasks_n):
                    if stop:
                        return
                    await conn.send(chunk(t * 1000 + k))
                    sent[t].append(t * 1000 + k)

            tasks = [asyncio.ensure_future(sender(t)) for t in range(tasks_n)]
            await stalled_until_idle(lambda: conn.messages_out)
            pacer = server._pacers[conn.id]
            assert not any(t.done() for t in tasks) and pacer.waiting == tasks_n
            # One more waits behind them.
            victim = asyncio.ensure_future(conn.send(chunk(999999)))
            await asyncio.sleep(0.2)
            assert not victim.done() and pacer.waiting == tasks_n + 1
            # A waiting send that is cancelled leaves the line.
            victim.cancel()
            with pytest.raises(asyncio.CancelledError):
                await victim
            assert pacer.waiting == tasks_n
            stop.append(True)  # the waiting sends are the last ones
            got = []
            while not all(t.done() for t in tasks) or len(got) < sum(map(len, sent.values())):
                message = await recv(ws)
                got.append(int.from_bytes(message[:4], "big"))
            await asyncio.gather(*tasks)
            await watch.stop()
            # Every message once, each sender's in its order, none dropped.
            assert sorted(got) == sorted(m for mine in sent.values() for m in mine)
            for t in range(tasks_n):
                assert [g for g in got if g // 1000 == t] == sent[t]
            assert watch.peak <= HIGH + CHUNK_FRAMED
            assert conn.messages_dropped == 0
            assert pacer.waiting == 0 and pacer._reserved == 0
            await ws.close()
            await until(lambda: conn.closed)
            assert server._pacers == {}
    run(body())


@pytest.mark.parametrize("how", ["app_close", "client_gone", "server_stop"])
def test_aio_waiting_send_fails_when_the_connection_closes(how):
    server = make_aio(**{"heartbeat.close_wait_ms": 10000})
    opened = []
    server.on_open(opened.append)

    async def body():
        await server.start()
        try:
            ws = await stalled_client(server.port)
            await until(lambda: opened)
            conn = opened[0]
            sent = []

            async def producer():
                for i in range(CAP):
                    await conn.send(chunk(i))
                    sent.append(i)

            task = asyncio.ensure_future(producer())
            await stalled_until_idle(lambda: len(sent))
            waiters = [asyncio.ensure_future(conn.send(b"x")) for _ in range(5)]
            await asyncio.sleep(0.1)
            pacer = server._pacers[conn.id]
            assert pacer.waiting == 6
            began = time.monotonic()
            if how == "app_close":
                await conn.close(1000, "bye")
                expected = (wsgate.ClosedError,)
            elif how == "client_gone":
                ws.transport.abort()  # TCP reset: no close handshake
                expected = (wsgate.ClosedError, wsgate.NotFoundError)
            else:
                await server.stop()
                expected = (wsgate.ClosedError, wsgate.NotFoundError, wsgate.StateError)
            for t in [task, *waiters]:
                with pytest.raises(expected):
                    await asyncio.wait_for(t, 10)
            # Released long before the close handshake could time out.
            assert time.monotonic() - began < 5
            assert pacer.waiting == 0 and pacer._reserved == 0
            # A send after the close fails at once too.
            with pytest.raises(wsgate.WsgateError):
                await asyncio.wait_for(conn.send(b"late"), 5)
            if how == "app_close":
                ws.transport.abort()
            await until(lambda: conn.closed)
            await asyncio.sleep(0.05)
            assert server._pacers == {}
        finally:
            await server.stop()
    run(body())
