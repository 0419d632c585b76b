"""Presence and session data without a cluster: the answers come from this
instance (its connections, its in-memory store) through the same calls as
with Redis: the blocking forms, callback=, the wsgate.aio awaitables, the
errors, and the blocking form refused inside a handler (BusyError, nothing
done) while callback= works there."""

import asyncio
import math
import threading
import time

import pytest

import wsgate
from wsgate.aio import AsyncServer
from conftest import connect, recv, run, url_of, wait_until


def named_server(make_server, **kw):
    """A server whose users are named by ?name= (anonymous without it), each
    connection subscribed to 'room' on open."""
    s = make_server(auth__mode="callback", **kw)
    opened = []

    @s.on_auth
    def name(request):
        request.accept(request.header("x-name"))

    @s.on_open
    def join(conn):
        conn.subscribe("room")
        opened.append(conn)

    return s, opened


def named(server, name=None):
    return connect(url_of(server), extra_headers={"x-name": name} if name else {})


def test_presence_answers_from_this_instance(make_server):
    s, opened = named_server(make_server)
    s.start()

    async def body():
        t0 = time.time()
        async with named(s, "alice") as a1, named(s, "alice") as a2, named(s, "bob"), named(s):
            wait_until(lambda: len(opened) == 4)
            entries = s.topic_presence("room", timeout=10)
            assert all(isinstance(e, wsgate.Presence) for e in entries)
            assert sorted((e.conn, e.user_id) for e in entries) == \
                sorted((c.id, c.user_id) for c in opened)
            assert None in {e.user_id for e in entries}  # the anonymous one
            for e in entries:
                assert e.node == e.conn >> 48 == 0  # no cluster: no node number
                assert t0 - 1 <= e.since <= time.time() + 1
            with pytest.raises(AttributeError):
                entries[0].user_id = "mallory"  # immutable

            alice = s.user_presence("alice")
            assert sorted(e.conn for e in alice) == sorted(c.id for c in opened if c.user_id == "alice")
            for e in alice:
                assert e.user_id == "alice"
                assert abs(e.since - s.connection(e.conn).connected_at) < 0.5  # the upgrade
            assert s.user_presence("nobody") == []
            assert s.topic_presence("empty-room") == []

            await a1.close()
            wait_until(lambda: len(s.user_presence("alice")) == 1)
            assert a2.open
    run(body())


def test_session_data_in_memory(make_server):
    s = make_server(cluster__session_max_bytes=16)
    s.start()
    assert s.session_get("k") is None
    assert s.session_set("k", b"\x00bytes") is None
    assert s.session_get("k") == b"\x00bytes"
    s.session_set("k", "caf\u00e9", timeout=10)  # str: stored as UTF-8; replaces
    assert s.session_get("k", timeout=math.inf) == "caf\u00e9".encode()
    s.session_set("view", memoryview(b"abc"))
    assert s.session_get("view") == b"abc"
    s.session_delete("k")
    assert s.session_get("k") is None
    s.session_delete("k")  # absent: not an error

    s.session_set("short", b"x", ttl=0.2)
    s.session_set("long", b"y", ttl=60)
    assert s.session_get("short") == b"x"
    wait_until(lambda: s.session_get("short") is None, timeout=5)
    assert s.session_get("long") == b"y"

    with pytest.raises(wsgate.LimitError):
        s.session_set("big", b"x" * 17)
    assert s.session_get("big") is None
    for key in ("", "k" * 256, "nul\0"):
        with pytest.raises(wsgate.InvalidArgumentError):
            s.session_set(key, b"v")
    for ttl in (0, -1, float("nan"), math.inf, "10"):
        with pytest.raises(wsgate.InvalidArgumentError, match="ttl"):
            s.session_set("k", b"v", ttl=ttl)
    with pytest.raises(wsgate.InvalidArgumentError, match="timeout"):
        s.session_get("k", timeout=-1)
    with pytest.raises(TypeError):
        s.session_set("k", 42)
    with pytest.raises(wsgate.InvalidArgumentError):
        s.topic_presence("")
    with pytest.raises(wsgate.InvalidArgumentError):
        s.user_presence("a\0b")

    s.stop()
    with pytest.raises(wsgate.StateError):
        s.session_get("long")
    with pytest.raises(wsgate.StateError):
        s.topic_presence("room", callback=lambda *a: None)


def test_callback_form_runs_on_the_service_thread(make_server, caplog):
    s, opened = named_server(make_server)
    s.start()
    answers = []
    done = threading.Event()

    def keep(result, error):
        answers.append((result, error, threading.get_ident()))
        done.set()

    s.session_set("k", b"v", callback=keep)
    assert done.wait(10)
    assert answers[0][:2] == (None, None) and answers[0][2] != threading.get_ident()
    done.clear()
    s.session_get("k", callback=keep)
    assert done.wait(10) and answers[1][:2] == (b"v", None)
    done.clear()
    s.user_presence("nobody", callback=keep)
    assert done.wait(10) and answers[2][:2] == ([], None)
    # set and delete without anyone told: fire and forget.
    s.session_delete("k", callback=None)
    wait_until(lambda: s.session_get("k") is None)

    with pytest.raises(TypeError, match="timeout"):
        s.session_get("k", timeout=1, callback=keep)
    with pytest.raises(TypeError, match="callable"):
        s.session_get("k", callback="not callable")

    def broken(result, error):
        raise RuntimeError("broken callback")

    done.clear()
    s.session_get("k", callback=broken)
    s.session_get("k", callback=keep)  # answered in order, after the broken one
    assert done.wait(10)
    wait_until(lambda: "broken callback" in caplog.text)
    assert "exception in the session_get callback" in caplog.text
    assert s.session_get("k") is None  # still serving


def test_blocking_form_in_a_handler_raises_and_does_nothing(make_server):
    s, opened = named_server(make_server)
    seen = []

    @s.on_message
    def handle(conn, message):
        for call in (lambda: s.session_set("in-handler", b"x"), lambda: s.session_get("k"),
                     lambda: s.topic_presence("room"), lambda: s.user_presence("alice")):
            try:
                call()
            except wsgate.BusyError as e:
                seen.append(str(e))
        # The callback form works here: the answer comes once this returns.
        s.topic_presence("room", callback=lambda entries, error: conn.send(
            f"{len(entries)} {error}"))
        s.session_get("k", callback=lambda value, error: conn.send(value or b"none"))

    s.start()
    s.session_set("k", b"from outside")

    async def body():
        async with named(s, "alice") as ws:
            await ws.send("go")
            assert {await recv(ws), await recv(ws)} == {"1 None", b"from outside"}
    run(body())
    assert len(seen) == 4, seen
    assert "inside a handler" in seen[0] and "callback=" in seen[0]
    assert s.session_get("in-handler") is None  # the refused set was not made


def test_awaitables():
    server = AsyncServer(host="127.0.0.1", port=0, auth__mode="callback",
                         options={"server.shutdown_timeout_ms": 1000})
    server.on_auth(lambda request: request.header("x-name"))
    opened = []

    @server.on_open
    async def join(conn):
        conn.subscribe("room")
        await server.session_set(f"seen:{conn.user_id}", conn.user_id)
        opened.append(conn)

    @server.on_message
    async def handle(conn, message):
        value = await server.session_get(f"seen:{conn.user_id}")
        here = await server.user_presence(conn.user_id)
        await conn.send(f"{value.decode()} {len(here)}")

    async def body():
        async with server:
            ticks = 0

            async def tick():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)
            ticker = asyncio.create_task(tick())
            async with connect(url_of(server), extra_headers={"x-name": "ann"}) as ws:
                while not opened:
                    await asyncio.sleep(0.01)
                await ws.send("?")
                assert await recv(ws) == "ann 1"
                entries = await server.topic_presence("room", timeout=10)
                assert [(e.conn, e.user_id) for e in entries] == [(opened[0].id, "ann")]
                assert await server.session_get("seen:ann") == b"ann"
                await server.session_delete("seen:ann")
                assert await server.session_get("seen:ann", timeout=10) is None
                with pytest.raises(wsgate.InvalidArgumentError):
                    await server.session_set("", b"x")
                with pytest.raises(wsgate.InvalidArgumentError, match="ttl"):
                    await server.session_set("k", b"x", ttl=0)
            ticker.cancel()
            assert ticks > 0  # the loop kept turning
        with pytest.raises(wsgate.StateError):
            await server.user_presence("ann")
    run(body())
