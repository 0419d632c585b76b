"""History and recovery from Python, without a cluster (the in-memory
history) and once across two instances on a real redis-server: Position
(the core's text, parse errors, immutability), subscribe_from replaying
after a position (blocking, callback= in a handler, awaited), GoneError for
positions no longer kept, the on_history hook shaping payloads (text and
binary, errors, exceptions, only before listening) and a kept message that
raises instead of touching freed memory."""

import asyncio
import os
import pickle
import sys
import threading
import time

import pytest

import wsgate
from wsgate.aio import AsyncServer
from conftest import connect, recv, run, url_of, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "packaging"))
from redis_server import RedisServer  # noqa: E402


def history_server(make_server, **options):
    """A server whose topics room:* keep a history, a hook that prefixes text
    messages with their position ("EPOCH-OFFSET|payload") and records every
    call, and the connections it opened."""
    s = make_server(options={"cluster.history_topics": "room:*", **options})
    shaped = []  # (topic, pos, payload as published), one per hook call
    opened = []

    @s.on_history
    def shape(topic, pos, msg):
        shaped.append((topic, pos, msg.payload))
        if msg.type == "text":
            msg.set(f"{pos}|{msg.payload}")

    s.on_open(opened.append)
    return s, shaped, opened


def publish_all(server, shaped, topic, texts):
    """Publishes texts and returns their positions (from the hook)."""
    before = len(shaped)
    for text in texts:
        server.publish(topic, text)
    wait_until(lambda: len(shaped) == before + len(texts))
    return [pos for _, pos, _ in shaped[before:]]


def test_position_is_the_cores_text_and_immutable():
    p = wsgate.Position(123, 45)
    assert (p.epoch, p.offset) == (123, 45)
    assert str(p) == "123-45"
    assert repr(p) == "wsgate.Position(epoch=123, offset=45)"
    assert wsgate.Position.parse("123-45") == p and hash(wsgate.Position.parse("123-45")) == hash(p)
    assert p != wsgate.Position(123, 46) and p != (123, 45)
    assert {p: 1}[wsgate.Position(123, 45)] == 1
    assert str(wsgate.Position(0, 0)) == "0-0" and wsgate.Position.parse("0-0") == wsgate.Position(0, 0)
    top = wsgate.Position(2 ** 64 - 1, 2 ** 64 - 1)
    assert len(str(top)) == 41  # WSG_POSITION_TEXT_MAX - 1
    assert wsgate.Position.parse(str(top)) == top
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(AttributeError):
        p.epoch = 1
    with pytest.raises(AttributeError):
        p.other = 1
    with pytest.raises(TypeError):
        p < top  # no order: offsets of two epochs do not compare

    for bad in ("", "12", "12-", "-3", "01-2", "1-02", "0-5", "5-0", "1-2-3", "a-b", " 1-2", "1-2 ",
                "+1-2", "18446744073709551616-1", "1-2\0", "\u0661-2"):
        with pytest.raises(wsgate.InvalidArgumentError, match="EPOCH-OFFSET") as info:
            wsgate.Position.parse(bad)
        assert isinstance(info.value, ValueError) and info.value.status == wsgate.Status.EINVAL
    with pytest.raises(TypeError):
        wsgate.Position.parse(b"1-2")
    for args in (("1", 2), (1.0, 2), (True, 1), (1, None)):
        with pytest.raises(TypeError):
            wsgate.Position(*args)
    for args in ((0, 1), (1, 0), (-1, 1), (1, 2 ** 64)):
        with pytest.raises(wsgate.InvalidArgumentError):
            wsgate.Position(*args)
    assert issubclass(wsgate.GoneError, LookupError)
    assert wsgate.GoneError("x").status == wsgate.Status.EGONE


def test_replay_after_a_position(make_server):
    s, shaped, opened = history_server(make_server)
    s.start()
    # Kept while nobody listens: an in-memory ring of this instance.
    positions = publish_all(s, shaped, "room:a", [f"m{i}" for i in range(1, 6)])
    epoch = positions[0].epoch
    assert epoch > 0 and [(p.epoch, p.offset) for p in positions] == [(epoch, i) for i in range(1, 6)]
    assert [(t, text) for t, _, text in shaped] == [("room:a", f"m{i}") for i in range(1, 6)]

    async def body():
        async with connect(url_of(s)) as a, connect(url_of(s)) as b, connect(url_of(s)) as c:
            wait_until(lambda: len(opened) == 3)
            # a saw m2: it gets m3..m5, then the live ones.
            assert s.subscribe_from(opened[0], "room:a", positions[1], timeout=10) == positions[4]
            for i in (3, 4, 5):
                assert await recv(a) == f"{epoch}-{i}|m{i}"
            # The hook shaped each replayed message again, the same way.
            assert [(t, p, text) for t, p, text in shaped[5:]] == \
                [("room:a", positions[i - 1], f"m{i}") for i in (3, 4, 5)]
            # b by id and the position's text; c from nothing: only the
            # current position, nothing replayed.
            assert s.subscribe_from(opened[1].id, "room:a", f"{epoch}-4") == positions[4]
            assert await recv(b) == f"{epoch}-5|m5"
            assert s.subscribe_from(opened[2], "room:a") == positions[4]
            s.publish("room:a", "m6")
            for ws in (a, b, c):
                assert await recv(ws) == f"{epoch}-6|m6"
            assert "room:a" in opened[2].topics
            # Position(0, 0): the whole history, while offset 1 is kept.
            async with connect(url_of(s)) as d:
                wait_until(lambda: len(opened) == 4)
                assert s.subscribe_from(opened[3], "room:a", wsgate.Position(0, 0)) == \
                    wsgate.Position(epoch, 6)
                for i in range(1, 7):
                    assert await recv(d) == f"{epoch}-{i}|m{i}"
            # A topic without any message yet: position 0-0.
            assert s.subscribe_from(opened[0], "room:empty") == wsgate.Position(0, 0)
    run(body())


def test_gone_and_refused(make_server):
    s, shaped, opened = history_server(make_server, **{"cluster.history_size": 3})
    s.start()
    positions = publish_all(s, shaped, "room:a", [f"m{i}" for i in range(1, 7)])
    epoch = positions[0].epoch

    async def body():
        async with connect(url_of(s)) as ws:
            wait_until(lambda: len(opened) == 1)
            conn = opened[0]
            # Trimmed (m4..m6 kept), the whole history without offset 1,
            # ahead of the history, another epoch.
            for start, why in ((positions[0], "older than the oldest"),
                               (wsgate.Position(0, 0), "no longer holds its first message"),
                               (wsgate.Position(epoch, 99), "ahead of the history"),
                               (wsgate.Position(epoch ^ 2, 6), "another epoch")):
                with pytest.raises(wsgate.GoneError, match=why) as info:
                    s.subscribe_from(conn, "room:a", start, timeout=10)
                assert info.value.status == wsgate.Status.EGONE
            assert positions[2] == wsgate.Position(epoch, 3)
            assert s.subscribe_from(conn, "room:a", positions[2]) == positions[5]  # the oldest kept: fine
            for i in (4, 5, 6):
                assert await recv(ws) == f"{epoch}-{i}|m{i}"
            # Subscribed all the same: the live ones come.
            s.publish("room:a", "m7")
            assert await recv(ws) == f"{epoch}-7|m7"

            # The callback form hands the error over.
            answers = []
            done = threading.Event()
            s.subscribe_from(conn, "room:a", positions[0],
                             callback=lambda pos, error: (answers.append((pos, error)), done.set()))
            assert done.wait(10)
            assert answers[0][0] is None and isinstance(answers[0][1], wsgate.GoneError)

            # Refused at once, nothing done.
            with pytest.raises(wsgate.InvalidArgumentError, match="keeps no history"):
                s.subscribe_from(conn, "news", None)
            assert "news" not in conn.topics
            for topic in ("", "room:\0"):
                with pytest.raises(wsgate.InvalidArgumentError):
                    s.subscribe_from(conn, topic)
            with pytest.raises(wsgate.InvalidArgumentError, match="EPOCH-OFFSET"):
                s.subscribe_from(conn, "room:b", "12-x")
            with pytest.raises(TypeError, match="from_"):
                s.subscribe_from(conn, "room:b", (1, 2))
            with pytest.raises(TypeError, match="timeout"):
                s.subscribe_from(conn, "room:b", callback=print, timeout=1)
            assert "room:b" not in conn.topics
            with pytest.raises(wsgate.NotFoundError):
                s.subscribe_from(conn.id + 1, "room:a")
    run(body())
    wait_until(lambda: not s.connections())
    with pytest.raises(wsgate.NotFoundError):
        s.subscribe_from(opened[0], "room:a")
    s.stop()
    with pytest.raises(wsgate.NotFoundError):  # a stopped server has no connection
        s.subscribe_from(opened[0], "room:a")


def test_hook_shapes_payloads(make_server, caplog):
    s = make_server(options={"cluster.history_topics": "room:*,bin", "limits.max_queue_bytes": 1024})
    seen = []

    @s.on_history
    def shape(topic, pos, msg):
        assert isinstance(pos, wsgate.Position) and isinstance(msg, wsgate.HistoryMessage)
        payload = msg.payload
        seen.append((topic, msg.type, payload, threading.get_ident()))
        if payload == "raise":
            raise RuntimeError("hook failed")
        if payload == "set, then raise":
            msg.set("set before the exception")
            raise RuntimeError("hook failed after set")
        if payload == "leave":
            return
        if payload == "too big":
            with pytest.raises(wsgate.InvalidArgumentError, match="max_queue_bytes"):
                msg.set("x" * 2000)
            return
        if msg.type == "text":
            with pytest.raises(TypeError, match="must be str"):
                msg.set(b"bytes for text")
            msg.set(f"[{topic} {pos.offset}] {payload}")
        else:
            with pytest.raises(TypeError, match="bytes-like"):
                msg.set("str for binary")
            msg.set(bytearray(payload[::-1]))

    s.on_open(lambda conn: (conn.subscribe("room:a"), conn.subscribe("bin"), conn.subscribe("plain")))
    s.start()
    with pytest.raises(wsgate.StateError, match="before the server listens"):
        s.on_history(lambda *a: None)
    with pytest.raises(wsgate.StateError):
        s.on_history(None)

    async def body():
        async with connect(url_of(s)) as ws:
            wait_until(lambda: s.connection_count == 1 and len(s.subscribers("plain")) == 1)
            s.publish("room:a", "caf\u00e9")
            assert await recv(ws) == "[room:a 1] caf\u00e9"
            s.publish("bin", b"\x00\x01\x02")
            assert await recv(ws) == b"\x02\x01\x00"
            s.publish("plain", "no history: no hook")
            assert await recv(ws) == "no history: no hook"
            for text in ("leave", "too big", "raise", "set, then raise"):
                s.publish("room:a", text)
            assert await recv(ws) == "leave"
            assert await recv(ws) == "too big"
            assert await recv(ws) == "raise"  # as published
            assert await recv(ws) == "set before the exception"
            s.publish("room:a", "still shaped")
            assert await recv(ws) == "[room:a 6] still shaped"
    run(body())
    assert [(t, kind, p) for t, kind, p, _ in seen] == [
        ("room:a", "text", "caf\u00e9"), ("bin", "binary", b"\x00\x01\x02"),
        ("room:a", "text", "leave"), ("room:a", "text", "too big"), ("room:a", "text", "raise"),
        ("room:a", "text", "set, then raise"), ("room:a", "text", "still shaped")]
    assert all(ident != threading.get_ident() for *_, ident in seen)  # the service thread
    assert "exception in on_history handler" in caplog.text and "hook failed after set" in caplog.text

    # Stopped, it can be replaced or removed: subscribers then get what was published.
    s.stop()
    with pytest.raises(TypeError, match="synchronous"):
        async def coroutine_hook(topic, pos, msg):
            pass
        s.on_history(coroutine_hook)
    with pytest.raises(TypeError, match="callable"):
        s.on_history("not callable")
    assert s.on_history(None) is None
    s.start()

    async def unshaped():
        async with connect(url_of(s)) as ws:
            wait_until(lambda: len(s.subscribers("room:a")) == 1)
            s.publish("room:a", "as published")
            assert await recv(ws) == "as published"
    run(unshaped())
    assert len(seen) == 7


def test_a_kept_message_raises_later(make_server):
    s = make_server(options={"cluster.history_topics": "room:*"})
    kept = []
    from_other_thread = []

    @s.on_history
    def keep(topic, pos, msg):
        kept.append(msg)
        assert msg.valid and "text" in repr(msg)

        def touch():
            try:
                msg.payload
            except wsgate.StateError as e:
                from_other_thread.append(str(e))
        t = threading.Thread(target=touch)
        t.start()
        t.join(5)

    s.start()
    s.publish("room:a", "once")
    wait_until(lambda: kept)
    wait_until(lambda: not kept[0].valid)
    msg = kept[0]
    assert "no longer valid" in repr(msg)
    for use in (lambda: msg.payload, lambda: msg.type, lambda: msg.set("later")):
        with pytest.raises(wsgate.StateError, match="only be used during the on_history"):
            use()
    assert len(from_other_thread) == 1 and "service thread" in from_other_thread[0]


def test_in_a_handler_the_callback_form(make_server):
    s, shaped, opened = history_server(make_server)
    busy = []

    @s.on_open
    def resume(conn):
        opened.append(conn)
        try:
            s.subscribe_from(conn, "room:blocked", None, timeout=5)
        except wsgate.BusyError as e:
            busy.append(str(e))
        start = conn.query.partition("from=")[2] or None
        s.subscribe_from(conn, "room:a", start,
                         callback=lambda pos, error: conn.send(f"answer {pos} {type(error).__name__}"))

    s.start()
    positions = publish_all(s, shaped, "room:a", ["m1", "m2", "m3"])
    epoch = positions[0].epoch

    async def body():
        async with connect(url_of(s, f"/?from={positions[0]}")) as ws:
            assert await recv(ws) == f"{epoch}-2|m2"
            assert await recv(ws) == f"{epoch}-3|m3"
            assert await recv(ws) == f"answer {epoch}-3 NoneType"
        async with connect(url_of(s, f"/?from={epoch}-9")) as ws:
            assert await recv(ws) == "answer None GoneError"
            s.publish("room:a", "m4")
            assert await recv(ws) == f"{epoch}-4|m4"
    run(body())
    assert len(busy) == 2 and "inside a handler" in busy[0] and "callback=" in busy[0]
    assert s.subscribers("room:blocked") == []  # the refused call did nothing


def test_awaitable():
    server = AsyncServer(host="127.0.0.1", port=0,
                         options={"server.shutdown_timeout_ms": 1000, "cluster.history_topics": "room:*"})
    shaped = []

    @server.on_history
    def shape(topic, pos, msg):
        shaped.append(pos)
        msg.set(f"{pos}|{msg.payload}")

    with pytest.raises(TypeError, match="synchronous"):
        async def coroutine_hook(topic, pos, msg):
            pass
        server.on_history(coroutine_hook)

    @server.on_open
    async def resume(conn):
        start = conn.query.partition("from=")[2] or None
        try:
            pos = await server.subscribe_from(conn, "room:a", start, timeout=10)
        except wsgate.GoneError as e:
            await conn.send(f"gone: {e}")
        else:
            await conn.send(f"at {pos}")

    async def body():
        async with server:
            for i in (1, 2, 3):
                server.server.publish("room:a", f"m{i}")
            while len(shaped) < 3:
                await asyncio.sleep(0.01)
            epoch = shaped[0].epoch
            async with connect(url_of(server, f"/?from={epoch}-1")) as ws:
                assert await recv(ws) == f"{epoch}-2|m2"
                assert await recv(ws) == f"{epoch}-3|m3"
                assert await recv(ws) == f"at {epoch}-3"
            async with connect(url_of(server, "/?from=0-0")) as ws:
                for i in (1, 2, 3):
                    assert await recv(ws) == f"{epoch}-{i}|m{i}"
                assert await recv(ws) == f"at {epoch}-3"
            async with connect(url_of(server, f"/?from={epoch + 2}-1")) as ws:
                assert (await recv(ws)).startswith("gone: position")
                with pytest.raises(wsgate.InvalidArgumentError, match="keeps no history"):
                    await server.subscribe_from(server.connections()[0], "lobby")
        with pytest.raises(wsgate.NotFoundError):
            await server.subscribe_from(1, "room:a")
    run(body())


def test_two_instances_on_redis(make_server):
    """Published on one instance, recovered on the other from a position
    that the first one's hook gave."""
    with RedisServer() as redis:
        servers, shaped, opened = [], [], []
        for _ in range(2):
            s, sh, op = history_server(make_server, **{"cluster.redis": redis.address,
                                                        "cluster.require": True})
            s.start()
            servers.append(s)
            shaped.append(sh)
            opened.append(op)
        a, b = servers
        wait_until(lambda: a.ready and b.ready)

        async def body():
            # An instance delivers (and shapes) a topic's messages once it
            # has a subscriber to them.
            async with connect(url_of(a)) as on_a, connect(url_of(b)) as on_b:
                wait_until(lambda: opened[0] and opened[1])
                assert a.subscribe_from(opened[0][0], "room:x", timeout=10) == wsgate.Position(0, 0)
                time.sleep(0.2)  # the subscription reaches Redis
                positions = publish_all(a, shaped[0], "room:x", ["m1", "m2", "m3"])
                epoch = positions[0].epoch
                for i in (1, 2, 3):
                    assert await recv(on_a) == f"{epoch}-{i}|m{i}"
                assert shaped[1] == []  # nobody listened on b

                assert b.subscribe_from(opened[1][0], "room:x", positions[0], timeout=10) == positions[2]
                assert await recv(on_b) == f"{epoch}-2|m2"
                assert await recv(on_b) == f"{epoch}-3|m3"
                a.publish("room:x", "m4")  # live from the other instance, no gap
                assert await recv(on_b) == f"{epoch}-4|m4"
                assert await recv(on_a) == f"{epoch}-4|m4"
                with pytest.raises(wsgate.GoneError, match="ahead"):
                    b.subscribe_from(opened[1][0], "room:x", wsgate.Position(epoch, 40))
        run(body())


def test_cluster_down(make_server):
    """Redis unreachable: subscribe_from answers ClusterError (subscribed,
    live messages only) and a publish is delivered here at once, the hook
    seeing Position(0, 0)."""
    s, shaped, opened = history_server(make_server, **{"cluster.redis": "127.0.0.1:1",
                                                        "cluster.reconnect_max_ms": 200})
    s.start()

    async def body():
        async with connect(url_of(s)) as ws:
            wait_until(lambda: opened)
            with pytest.raises(wsgate.ClusterError, match="live messages only"):
                s.subscribe_from(opened[0], "room:a", wsgate.Position(5, 1), timeout=10)
            s.publish("room:a", "while down")
            assert await recv(ws) == "0-0|while down"
            assert shaped == [("room:a", wsgate.Position(0, 0), "while down")]
    run(body())
