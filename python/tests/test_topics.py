"""Topics, users and sets of connections from Python: publish reaches the
room's subscribers only, subscriptions end with the connection, users get
their messages on every connection, a broadcast can skip the sender."""

import asyncio

import pytest

import wsgate
from conftest import connect, recv, run, url_of, wait_until


def test_rooms_as_topics(make_server):
    server = make_server()
    joined = []

    @server.on_open
    def opened(conn):
        room = conn.query.split("=", 1)[1]
        conn.subscribe("room:" + room)
        joined.append(conn)

    @server.on_message
    def handle(conn, message):
        for topic in conn.topics:
            server.publish(topic, f"{message}")

    server.start()

    async def body():
        async with connect(url_of(server, "/?room=a")) as a1, connect(url_of(server, "/?room=a")) as a2, \
                connect(url_of(server, "/?room=b")) as b:
            wait_until(lambda: len(server.subscribers("room:a")) == 2 and len(joined) == 3)
            await a1.send("hello a")
            assert await recv(a1) == "hello a"
            assert await recv(a2) == "hello a"
            await b.send("hello b")
            assert await recv(b) == "hello b"  # b's first message: none of room a's
            assert joined[0].topics == ["room:a"]
            a2_conn = joined[1]
            a2_conn.unsubscribe("room:a")
            wait_until(lambda: len(server.subscribers("room:a")) == 1)
        # Everyone left: the rooms are empty, publishing to them is harmless.
        wait_until(lambda: not server.subscribers("room:a") and not server.subscribers("room:b"))
        server.publish("room:a", "nobody")
    run(body())


def test_bad_topics_are_refused(make_server):
    server = make_server()
    seen = {}

    @server.on_open
    def opened(conn):
        for bad in ("", "x" * 256, "nul\0inside"):
            try:
                conn.subscribe(bad)
            except wsgate.InvalidArgumentError as e:
                seen.setdefault("errors", []).append(str(e))
        conn.subscribe("y" * 255)
        seen["topics"] = conn.topics

    server.start()

    async def body():
        async with connect(url_of(server)):
            wait_until(lambda: "topics" in seen)
    run(body())
    assert len(seen["errors"]) == 3
    assert seen["topics"] == ["y" * 255]
    with pytest.raises(wsgate.InvalidArgumentError):
        server.publish("", "x")


def test_users_and_sets(make_server):
    server = make_server(options={"auth.mode": "callback"})

    @server.on_auth
    def auth(req):
        req.accept(req.header("x-user"))

    server.start()

    async def body():
        h = lambda who: {"extra_headers": {"x-user": who}}  # noqa: E731
        async with connect(url_of(server), **h("alice")) as a1, connect(url_of(server), **h("alice")) as a2, \
                connect(url_of(server), **h("bob")) as b:
            wait_until(lambda: len(server.user_connections("alice")) == 2)
            server.send_to_user("alice", "for alice")
            assert await recv(a1) == "for alice" and await recv(a2) == "for alice"
            with pytest.raises(wsgate.NotFoundError):
                server.send_to_user("carol", "x")
            bob_id = server.user_connections("bob")[0]
            server.broadcast_except(bob_id, "not bob")
            assert await recv(a1) == "not bob" and await recv(a2) == "not bob"
            server.send_many([bob_id, 0xdead00000001], b"to bob")
            assert await recv(b) == b"to bob"  # bob's first: the broadcast skipped him
            server.close_user("alice", 4001, "bye")
            for ws in (a1, a2):
                with pytest.raises(Exception):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 4001
        wait_until(lambda: not server.user_connections("alice"))
    run(body())
