"""Server, connections and callbacks against real `websockets` clients."""

import asyncio
import logging
import os
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed

import wsgate
from conftest import connect, recv, run, url_of, wait_until


def echo_server(make_server, **kwargs):
    server = make_server(**kwargs)

    @server.on_message
    def echo(conn, message):
        conn.send(message)

    return server


def test_echo_text_and_binary(make_server):
    server = echo_server(make_server)
    server.start()
    assert server.running and server.port > 0

    async def body():
        async with connect(url_of(server)) as ws:
            for msg in ["hello", "", "héllo wörld ✓", b"\x00\x01\xff", b"", os.urandom(200_000),
                        "x" * 100_000]:
                await ws.send(msg)
                got = await recv(ws)
                assert type(got) is type(msg) and got == msg
    run(body())


def test_messages_reach_handler_with_their_type(make_server):
    server = make_server()
    got = []

    @server.on_message
    def handle(conn, message):
        got.append(message)
        # Any bytes-like object is sent as binary.
        conn.send(bytearray(b"ba"))
        conn.send(memoryview(b"mv"))
        conn.send(message)

    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            await ws.send("text")
            assert [await recv(ws) for _ in range(3)] == [b"ba", b"mv", "text"]
            await ws.send(b"bin")
            assert [await recv(ws) for _ in range(3)] == [b"ba", b"mv", b"bin"]
    run(body())
    assert got == ["text", b"bin"]
    assert type(got[0]) is str and type(got[1]) is bytes


def test_send_rejects_other_types(make_server):
    server = make_server()
    errors = []

    @server.on_message
    def handle(conn, message):
        for bad in (123, None, ["x"]):
            try:
                conn.send(bad)
            except TypeError as e:
                errors.append(str(e))
        conn.send("done")

    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            await ws.send("go")
            assert await recv(ws) == "done"
    run(body())
    assert len(errors) == 3 and "str (text) or bytes-like" in errors[0]


def test_connection_info(make_server):
    server = make_server(options={"security.allowed_origins": "http://app.example"})
    seen = {}

    @server.on_open
    def opened(conn):
        seen["open"] = conn
        seen["info"] = conn.info()

    @server.on_message
    def handle(conn, message):
        seen["same"] = conn is seen["open"]
        conn.data["count"] = conn.data.get("count", 0) + 1
        conn.send(f"{conn.messages_in}")

    @server.on_close
    def closed(conn, code, reason):
        seen["close"] = (conn, code, reason, conn.close_cause, conn.messages_in)

    server.start()

    async def body():
        async with connect(url_of(server, "/room/7?user=ann&x=a%20b"),
                           origin="http://app.example") as ws:
            await ws.send("one")
            assert await recv(ws) == "1"
            await ws.send("two")
            assert await recv(ws) == "2"
    run(body())
    wait_until(lambda: "close" in seen)
    conn = seen["open"]
    assert seen["same"]
    assert conn.peer_address == "127.0.0.1" and conn.peer_port > 0
    assert conn.peer == ("127.0.0.1", conn.peer_port)
    assert conn.path == "/room/7"
    # The query as sent (lws' ws role could only give it back decoded).
    assert conn.query == "user=ann&x=a%20b"
    assert conn.origin == "http://app.example"
    assert conn.subprotocol == ""
    assert abs(conn.connected_at - time.time()) < 60
    info = seen["info"]
    assert info["id"] == conn.id and info["messages_in"] == 0 and info["rtt_us"] in (-1, None)
    assert conn.data == {"count": 2}
    c, code, reason, cause, messages_in = seen["close"]
    assert c is conn and code == 1000 and cause == "peer" and messages_in == 2
    assert conn.closed and conn.close_code == 1000 and conn.close_cause == "peer"
    # Facts stay readable after the close; live counters do not.
    assert conn.path == "/room/7" and "127.0.0.1" in repr(conn)
    with pytest.raises(wsgate.NotFoundError):
        conn.messages_in


def test_connections_listing_and_server_send(make_server):
    server = make_server()
    opened = []
    server.on_open(opened.append)
    server.start()

    async def body():
        async with connect(url_of(server)) as a, connect(url_of(server)) as b:
            wait_until(lambda: len(opened) == 2)
            assert server.connection_count == 2
            conns = server.connections()
            assert sorted(c.id for c in conns) == sorted(c.id for c in opened)
            assert all(c is server.connection(c.id) for c in conns)
            server.send(opened[0], "to-first")
            server.send(opened[1].id, "to-second")
            got = {await recv(a), await recv(b)}
            assert got == {"to-first", "to-second"}
    run(body())
    wait_until(lambda: server.connection_count == 0)


def test_broadcast_to_many_clients(make_server):
    server = make_server()
    n = 25
    server.start()

    async def body():
        clients = [await connect(url_of(server)).__aenter__() for _ in range(n)]
        try:
            wait_until(lambda: server.connection_count == n)
            for i in range(10):
                server.broadcast(f"msg {i}")
            server.broadcast(b"\x01" * 100_000)  # large: copied with the GIL released
            for ws in clients:
                assert [await recv(ws) for _ in range(10)] == [f"msg {i}" for i in range(10)]
                assert await recv(ws) == b"\x01" * 100_000
        finally:
            for ws in clients:
                await ws.close()
    run(body())


def test_broadcast_from_handler(make_server):
    server = make_server()

    @server.on_message
    def handle(conn, message):
        server.broadcast(message)

    server.start()

    async def body():
        async with connect(url_of(server)) as a, connect(url_of(server)) as b:
            wait_until(lambda: server.connection_count == 2)
            await a.send("from a")
            assert await recv(a) == "from a" and await recv(b) == "from a"
    run(body())


def test_sends_from_several_threads(make_server):
    server = make_server()
    opened = []
    server.on_open(opened.append)
    server.start()
    threads, per_thread = 4, 300

    def sender(conn, t):
        for i in range(per_thread):
            conn.send(f"{t}:{i}")

    async def body():
        async with connect(url_of(server)) as ws:
            wait_until(lambda: opened)
            workers = [threading.Thread(target=sender, args=(opened[0], t)) for t in range(threads)]
            for w in workers:
                w.start()
            last = {t: -1 for t in range(threads)}
            for _ in range(threads * per_thread):
                t, i = map(int, (await recv(ws)).split(":"))
                assert i == last[t] + 1  # each thread's messages arrive in its order
                last[t] = i
            for w in workers:
                w.join(10)
            assert all(v == per_thread - 1 for v in last.values())
            assert opened[0].messages_out == threads * per_thread
    run(body())


def test_callback_that_raises_is_logged_and_server_goes_on(make_server, caplog):
    server = make_server()

    @server.on_open
    def opened(conn):
        raise RuntimeError("open went wrong")

    @server.on_message
    def handle(conn, message):
        if message == "boom":
            raise ValueError("handler exploded")
        conn.send(message)

    @server.on_close
    def closed(conn, code, reason):
        raise KeyError("close went wrong")

    server.start()
    caplog.set_level(logging.ERROR, logger="wsgate")

    async def body():
        async with connect(url_of(server)) as ws:
            await ws.send("boom")
            await ws.send("still alive")
            assert await recv(ws) == "still alive"
    run(body())
    wait_until(lambda: any("on_close" in r.getMessage() for r in caplog.records))
    errors = [r for r in caplog.records if r.name == "wsgate" and r.exc_info]
    kinds = {r.exc_info[0] for r in errors}
    assert {RuntimeError, ValueError, KeyError} <= kinds
    text = caplog.text
    assert "handler exploded" in text and "Traceback" in text
    # Still serving new clients.

    async def again():
        async with connect(url_of(server)) as ws:
            await ws.send("x")
            assert await recv(ws) == "x"
    run(again())


def test_log_events_go_to_the_wsgate_logger(make_server, caplog):
    caplog.set_level(logging.INFO, logger="wsgate")
    server = echo_server(make_server)
    server.start()
    port = server.port

    async def body():
        async with connect(url_of(server)) as ws:
            await ws.send("x")
            await recv(ws)
    run(body())
    server.stop()
    events = {r.wsgate["event"]: r for r in caplog.records if hasattr(r, "wsgate")}
    assert {"listen", "open", "close", "stop"} <= set(events)
    assert events["listen"].wsgate["port"] == port
    assert events["listen"].levelno == logging.INFO
    assert events["close"].wsgate["code"] == 1000 and events["close"].wsgate["cause"] == "peer"
    assert events["open"].getMessage().startswith("{")  # the JSON line itself


def test_reject_is_logged_as_warning(make_server, caplog):
    caplog.set_level(logging.WARNING, logger="wsgate")
    server = make_server(options={"server.path": "/ws"})
    server.start()

    async def body():
        with pytest.raises(Exception):
            async with connect(url_of(server, "/elsewhere")):
                pass
    run(body())
    wait_until(lambda: any(getattr(r, "wsgate", {}).get("event") == "reject" for r in caplog.records))
    rec = next(r for r in caplog.records if getattr(r, "wsgate", {}).get("event") == "reject")
    assert rec.levelno == logging.WARNING and rec.wsgate["status"] == 404


def test_close_from_server_with_code_and_reason(make_server):
    server = make_server()
    closes = []

    @server.on_message
    def handle(conn, message):
        conn.send("bye")
        conn.close(4001, "go away now")
        with pytest.raises(wsgate.ClosedError):
            conn.send("late")
        with pytest.raises(wsgate.ClosedError):
            conn.close()

    server.on_close(lambda conn, code, reason: closes.append((code, reason, conn.close_cause)))
    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            await ws.send("x")
            assert await recv(ws) == "bye"
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.code == 4001 and info.value.reason == "go away now"
    run(body())
    wait_until(lambda: closes)
    assert closes == [(4001, "go away now", "app")]


def test_close_argument_errors(make_server):
    server = make_server()
    opened = []
    server.on_open(opened.append)
    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            wait_until(lambda: opened)
            conn = opened[0]
            with pytest.raises(wsgate.InvalidArgumentError, match="close code 1005"):
                conn.close(1005)
            with pytest.raises(wsgate.InvalidArgumentError, match="123 bytes"):
                conn.close(1000, "x" * 200)
            conn.close(1001, "fine")
            with pytest.raises(ConnectionClosed):
                await recv(ws)
    run(body())


def test_stale_connections_raise_not_found(make_server):
    server = make_server()
    opened = []
    server.on_open(opened.append)
    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            wait_until(lambda: opened)
    run(body())
    conn = opened[0]
    wait_until(lambda: conn.closed)
    for call in (lambda: conn.send("x"), lambda: conn.close(), lambda: conn.info(),
                 lambda: server.send(conn.id, "x"),
                 lambda: conn.set_timeout("heartbeat.pong_wait_ms", 1000)):
        with pytest.raises(wsgate.NotFoundError) as info:
            call()
        assert info.value.status == wsgate.Status.ENOTFOUND
        assert str(conn.id) in info.value.message
    ghost = server.connection(12345)
    with pytest.raises(wsgate.NotFoundError):
        ghost.send("x")


def test_connection_outliving_its_server():
    server = wsgate.Server(host="127.0.0.1", port=0)
    conn = server.connection(1)
    del server
    import gc
    gc.collect()
    with pytest.raises(wsgate.NotFoundError, match="server no longer exists"):
        conn.send("x")


def test_lifecycle_errors_and_double_stop(make_server):
    server = make_server()
    server.stop()  # never started: nothing to do
    with pytest.raises(wsgate.StateError):
        server.port
    with pytest.raises(wsgate.StateError):
        server.broadcast("nobody")
    server.listen()
    port = server.port
    assert port > 0
    with pytest.raises(wsgate.StateError):
        server.listen()
    server.start()
    with pytest.raises(wsgate.StateError, match="already running"):
        server.start()
    server.stop()
    server.stop()
    assert not server.running
    # A stopped server can be started again.
    server.start()
    assert server.running
    server.stop()


def test_bind_conflict_is_a_network_error(make_server):
    first = make_server()
    first.listen()
    second = make_server(port=first.port)
    with pytest.raises(wsgate.NetworkError) as info:
        second.start()
    assert isinstance(info.value, OSError)
    assert str(first.port) in info.value.message


def test_context_manager(make_server):
    server = echo_server(make_server)
    with server as s:
        assert s is server and server.running

        async def body():
            async with connect(url_of(server)) as ws:
                await ws.send("in context")
                assert await recv(ws) == "in context"
        run(body())
    assert not server.running


def test_stop_from_a_handler(make_server):
    server = make_server()
    closes = []

    @server.on_message
    def handle(conn, message):
        server.stop()  # on the service thread: requested, done by a helper thread

    server.on_close(lambda conn, code, reason: closes.append((code, conn.close_cause)))
    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            await ws.send("stop please")
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.code == 1001
    run(body())
    wait_until(lambda: not server.running)
    assert closes == [(1001, "shutdown")]


def test_serve_forever_returns_after_stop_from_another_thread(make_server):
    server = make_server()
    threading.Timer(0.3, server.stop).start()
    t0 = time.monotonic()
    server.serve_forever(poll_interval=0.05)
    assert not server.running and time.monotonic() - t0 < 10


def test_handlers_can_change_while_running(make_server):
    server = make_server()
    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            await ws.send("nobody listens")  # no handler: dropped
            # Let the server take it in before a handler exists (else it races).
            deadline = time.monotonic() + 10
            while not any(c.messages_in >= 1 for c in server.connections()):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            server.on_message(lambda conn, m: conn.send("first:" + m))
            await ws.send("a")
            assert await recv(ws) == "first:a"
            server.on_message(lambda conn, m: conn.send("second:" + m))
            await ws.send("b")
            assert await recv(ws) == "second:b"
    run(body())


def test_heartbeat_rtt_and_per_connection_timeout(make_server):
    server = make_server(options={"heartbeat.ping_interval_ms": 100})
    opened = []
    server.on_open(opened.append)
    server.start()

    async def body():
        async with connect(url_of(server)) as ws:  # websockets answers pings itself
            wait_until(lambda: opened)
            conn = opened[0]
            assert conn.rtt is None or conn.rtt >= 0
            conn.set_timeout("heartbeat.pong_wait_ms", 30_000)
            with pytest.raises(wsgate.InvalidArgumentError):
                conn.set_timeout("heartbeat.no_such", 1)
            deadline = time.monotonic() + 10
            while conn.rtt is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert conn.rtt is not None and 0 <= conn.rtt < 5
    run(body())
