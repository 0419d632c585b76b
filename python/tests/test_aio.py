"""wsgate.aio: events delivered into the program's own asyncio loop,
awaitable sends that never block it."""

import asyncio
import logging
import threading

import pytest
from websockets.exceptions import ConnectionClosed

from wsgate.aio import AsyncConnection, AsyncServer, Event
from conftest import connect, recv, run


def make(**kw):
    return AsyncServer(host="127.0.0.1", port=0,
                       options={"server.shutdown_timeout_ms": 1000}, **kw)


def test_async_handlers_run_in_the_loop():
    server = make()
    loop_threads = set()
    opened, closed = [], []

    @server.on_open
    def on_open(conn):
        loop_threads.add(threading.get_ident())
        opened.append(conn)

    @server.on_message
    async def on_message(conn, message):
        loop_threads.add(threading.get_ident())
        assert isinstance(conn, AsyncConnection)
        await conn.send(message)

    @server.on_close
    async def on_close(conn, code, reason):
        closed.append((conn.id, code))

    async def body():
        async with server:
            assert server.running and server.port > 0
            async with connect(f"ws://127.0.0.1:{server.port}/a?b=c") as ws:
                await ws.send("hi")
                assert await recv(ws) == "hi"
                await ws.send(b"\x01\x02")
                assert await recv(ws) == b"\x01\x02"
                assert [c.id for c in server.connections()] == [opened[0].id]
                assert opened[0].path == "/a" and opened[0].query == "b=c"
                assert opened[0].messages_in == 2  # delegated to the Connection
            for _ in range(100):
                if closed:
                    break
                await asyncio.sleep(0.02)
        assert not server.running
        return threading.get_ident()

    main_thread = run(body())
    assert loop_threads == {main_thread}
    assert closed == [(opened[0].id, 1000)]


def test_event_iterator_and_broadcast():
    server = make()

    async def body():
        await server.start()
        events = server.events()
        async with connect(f"ws://127.0.0.1:{server.port}/") as a, \
                connect(f"ws://127.0.0.1:{server.port}/") as b:
            got = []
            async for event in events:
                assert isinstance(event, Event)
                got.append(event)
                if event.kind == "message":
                    await server.broadcast(f"all:{event.message}")
                    break
                if sum(e.kind == "open" for e in got) == 2:
                    await a.send("from a")
            assert [e.kind for e in got] == ["open", "open", "message"]
            assert got[2].message == "from a"
            assert await recv(a) == "all:from a" and await recv(b) == "all:from a"
            await server.stop()
        # The iterator delivered the close events, then ended with the stop.
        rest = [e async for e in events]
        assert sorted(e.kind for e in rest) == ["close", "close"]
        assert all(e.code == 1001 for e in rest)

    run(body())


def test_serve_forever_cancelled_stops_gracefully():
    server = make()

    async def body():
        task = asyncio.create_task(server.serve_forever())
        while not server.running:
            await asyncio.sleep(0.01)
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not server.running
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.code == 1001

    run(body())


def test_serve_forever_ends_when_a_handler_stops_the_server():
    server = make()

    @server.on_message
    async def on_message(conn, message):
        if message == "quit":
            await server.stop()

    async def body():
        serving = asyncio.create_task(server.serve_forever())
        while not server.running:
            await asyncio.sleep(0.01)
        async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("quit")
            await asyncio.wait_for(serving, 10)
            with pytest.raises(ConnectionClosed):
                await recv(ws)

    run(body())


def test_many_awaited_sends_keep_the_loop_responsive():
    server = make()
    ticks = []

    @server.on_message
    async def on_message(conn, message):
        for i in range(2000):
            await conn.send(f"{i}")

    async def ticker():
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    async def body():
        async with server:
            t = asyncio.create_task(ticker())
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("go")
                for i in range(2000):
                    assert await recv(ws) == f"{i}"
            t.cancel()

    run(body())
    assert len(ticks) > 100  # the sends yielded to other tasks


def test_async_handler_exception_is_logged(caplog):
    server = make()
    caplog.set_level(logging.ERROR, logger="wsgate")

    @server.on_message
    async def on_message(conn, message):
        if message == "boom":
            raise ValueError("async boom")
        await conn.send(message)

    async def body():
        async with server:
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("boom")
                await ws.send("ok")
                assert await recv(ws) == "ok"

    run(body())
    assert "async boom" in caplog.text and "Traceback" in caplog.text
