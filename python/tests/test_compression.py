"""permessage-deflate seen from Python: the options come from the core's
table, Connection.compression tells who negotiated it, and a broadcast
reaches compressing and plain clients alike (compressed once, shared)."""

import json

import pytest
from websockets.exceptions import ConnectionClosed

import wsgate
from wsgate import _core
from conftest import connect, recv, run, url_of, wait_until


def test_compression_options_are_in_the_table():
    options = {o.name: o for o in wsgate.options()}
    assert options["compression.enabled"].default == "false"
    assert options["compression.min_bytes"].default == "128"
    assert options["compression.level"].default == "1"
    assert _core.close_cause_str(14) == "bad_compression"


def test_connection_reports_negotiated_compression(make_server):
    server = make_server(options={"compression.enabled": True})
    opened = []
    server.on_open(opened.append)
    server.start()

    async def body():
        async with connect(url_of(server), compression="deflate") as deflating:
            assert [e.name for e in deflating.extensions] == ["permessage-deflate"]
            wait_until(lambda: len(opened) == 1)
            async with connect(url_of(server)) as plain:
                assert plain.extensions == []
                wait_until(lambda: len(opened) == 2)
                assert opened[0].compression is True
                assert opened[0].info()["compression"] is True
                assert opened[1].compression is False
                assert opened[1].info()["compression"] is False
    run(body())


def test_compression_is_off_by_default(make_server):
    server = make_server()
    opened = []
    server.on_open(opened.append)
    server.start()

    async def body():
        async with connect(url_of(server), compression="deflate") as ws:
            assert ws.extensions == []
            wait_until(lambda: opened)
            assert opened[0].compression is False
    run(body())


def test_broadcast_reaches_compressing_and_plain_clients(make_server):
    server = make_server(options={"compression.enabled": True})
    opened = []
    server.on_open(opened.append)
    server.start()
    # Compressible (well over compression.min_bytes), text and binary, and a
    # short one that goes uncompressed to everybody.
    text = json.dumps([{"user": f"u{i}", "text": "hello everyone " * 4} for i in range(200)])
    blob = bytes(range(256)) * 300
    short = "hi"

    async def body():
        async with connect(url_of(server), compression="deflate") as a, \
                connect(url_of(server)) as b, \
                connect(url_of(server), compression="deflate") as c:
            wait_until(lambda: len(opened) == 3)
            assert sorted(conn.compression for conn in opened) == [False, True, True]
            for message in (text, blob, short):
                server.broadcast(message)
            for ws in (a, b, c):
                assert await recv(ws) == text
                assert await recv(ws) == blob
                assert await recv(ws) == short
    run(body())


def test_inflated_size_is_bounded_by_the_message_limit(make_server):
    server = make_server(options={"compression.enabled": True,
                                  "limits.max_message_bytes": 65536})
    closed = []
    delivered = []

    @server.on_message
    def echo(conn, message):
        delivered.append(len(message))
        conn.send(message)

    @server.on_close
    def on_close(conn, code, reason):
        closed.append((code, conn.close_cause))

    server.start()

    async def body():
        async with connect(url_of(server), compression="deflate") as ws:
            await ws.send("a" * 65536)  # exactly the limit: fine
            assert await recv(ws) == "a" * 65536
            await ws.send("a" * 65537)  # a few hundred bytes on the wire
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.code == 1009
    run(body())
    wait_until(lambda: closed)
    assert closed == [(1009, "too_big")]
    assert delivered == [65536]  # the message over the limit never reached the application
