"""Abuse limits seen from Python: the options come from the core's table, a
message flood closes with 1008 and close_cause "rate_limit", and the per-IP
connection limit refuses with 429 before the upgrade."""

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

import wsgate
from wsgate import _core
from conftest import connect, recv, run, url_of, wait_until


def test_limit_options_are_in_the_table():
    names = {o.name for o in wsgate.options()}
    for name in ("limits.messages_per_s", "limits.message_burst", "limits.rate_policy",
                 "limits.max_connections_per_ip", "limits.max_connections_per_user",
                 "limits.handshakes_per_ip_per_s", "server.trusted_proxies"):
        assert name in names
    assert _core.close_cause_str(13) == "rate_limit"


def test_message_flood_closes_with_rate_limit(make_server):
    server = make_server(options={"limits.messages_per_s": 5, "limits.message_burst": 5})
    closed = []

    @server.on_message
    def echo(conn, message):
        conn.send(message)

    @server.on_close
    def on_close(conn, code, reason):
        closed.append((code, conn.close_cause))

    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            for i in range(20):
                await ws.send(f"m{i}")
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await recv(ws, timeout=5)
            assert info.value.code == 1008
    run(body())
    wait_until(lambda: closed)
    assert closed[0] == (1008, "rate_limit")


def test_per_ip_limit_refuses_with_429(make_server):
    server = make_server(options={"limits.max_connections_per_ip": 1})
    server.start()

    async def body():
        async with connect(url_of(server)):
            with pytest.raises(InvalidStatusCode) as info:
                async with connect(url_of(server)):
                    pass
            assert info.value.status_code == 429
    run(body())
