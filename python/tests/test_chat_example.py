"""python/examples/chat.py, the chat demo on the binding's topics API, run as
a child process and driven by websockets clients: the page at /, two rooms
kept apart, messages, /who, /msg, a bad room, and a graceful SIGTERM; the
resume protocol (room messages carry "pos"; a reconnect with from= gets what
it missed once and in order, a bad or lost from gives the error lines); then
two of them on one real redis-server, where /who lists the room on both
instances and /msg finds a user on the other one (or says it is not online)."""

import asyncio
import http.client
import json
import os
import re
import signal
import sys

import pytest
import websockets

from conftest import Child, run

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "packaging"))
from redis_server import RedisServer  # noqa: E402
CHAT = os.path.join(ROOT, "python", "examples", "chat.py")
PAGE = os.path.join(ROOT, "examples", "chat", "index.html")


def start_chat(*extra):
    child = Child([CHAT, "--host", "127.0.0.1", "--port", "0", *extra])
    line = child.wait_line("open http://127.0.0.1:")
    assert line.rstrip("\n").endswith("/ in a browser"), line
    child.port_number = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
    return child


@pytest.fixture
def chat():
    child = start_chat()
    try:
        yield child
    finally:
        child.kill()


def connect(port, query):
    return websockets.connect(f"ws://127.0.0.1:{port}/chat?{query}", open_timeout=10, close_timeout=5,
                              ping_interval=None)


POSITION = re.compile(r"[1-9][0-9]*-[1-9][0-9]*")


async def recv(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_room(ws, timeout=10, positions=None):
    """A room message (join, leave, message): its "pos" comes first and is
    a position; returned without it (appended to positions if given)."""
    message = await recv(ws, timeout)
    assert list(message)[:1] == ["pos"], message
    pos = message.pop("pos")
    assert POSITION.fullmatch(pos), pos
    if positions is not None:
        positions.append(pos)
    return message


async def joined(port, room, name):
    ws = await connect(port, f"room={room}&name={name}")
    assert await recv(ws) == {"type": "welcome", "user": name, "room": room}
    assert await recv_room(ws) == {"type": "join", "user": name, "room": room}
    return ws


def test_chat_example(chat):
    port = chat.port_number
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/?room=A")
    resp = conn.getresponse()
    with open(PAGE, "rb") as f:
        assert (resp.status, resp.read()) == (200, f.read())
    conn.close()

    async def body():
        alice = await joined(port, "A", "alice")
        bob = await joined(port, "A", "bob")
        assert await recv_room(alice) == {"type": "join", "user": "bob", "room": "A"}
        carol = await joined(port, "B", "carol")

        await alice.send("hello \u2713")
        want = {"type": "message", "user": "alice", "room": "A", "text": "hello \u2713"}
        assert await recv_room(bob) == want and await recv_room(alice) == want
        await bob.send("hi alice")
        assert (await recv_room(alice))["text"] == "hi alice"
        assert (await recv_room(bob))["text"] == "hi alice"

        await bob.send("/who")
        assert await recv(bob) == {"type": "who", "room": "A", "users": ["alice", "bob"]}
        await alice.send("/msg carol psst")
        dm = {"type": "direct", "from": "alice", "to": "carol", "text": "psst"}
        assert await recv(carol) == dm and await recv(alice) == dm
        await alice.send("/msg nobody x")
        assert await recv(alice) == {"type": "error", "text": "nobody is not online"}

        # B heard nothing from A: carol's next message is her own.
        await carol.send("anyone?")
        assert (await recv_room(carol))["text"] == "anyone?"

        await bob.close()
        assert await recv_room(alice) == {"type": "leave", "user": "bob", "room": "A"}

        bad = await connect(port, "room=not%20ok")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(bad.recv(), 10)
        assert bad.close_code == 4001 and "room must be" in bad.close_reason

        chat.proc.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(alice.recv(), 10)
        assert (alice.close_code, alice.close_reason) == (1001, "going away")
        await carol.close()
    run(body())
    assert chat.wait(timeout=15) == 0


async def recv_skipping_joins(ws):
    """The next message that is not a join notice: other users' joins (from
    other connections, or through Redis from the other instance) come in no
    fixed order relative to what this connection waits for."""
    message = await recv(ws)
    while message.get("type") == "join":
        message = await recv(ws)
    return message


GONE = {"type": "error",
        "text": "some missed messages are no longer kept: you may have missed messages before this point"}
BAD_FROM = {"type": "error", "text": "bad from position: live messages only"}
HISTORY_DOWN = {"type": "error", "text": "history unavailable (cluster down): missed messages are not shown"}


def test_chat_example_resumes(chat):
    port = chat.port_number

    async def quiet(ws):
        """Nothing more comes (no duplicate) within a moment."""
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)

    async def body():
        alice = await joined(port, "R", "alice")
        bob = await joined(port, "R", "bob")
        seen = []
        assert await recv_room(alice, positions=seen) == {"type": "join", "user": "bob", "room": "R"}
        await alice.close()
        assert await recv_room(bob) == {"type": "leave", "user": "alice", "room": "R"}
        for i in range(3):
            await bob.send(f"missed {i}")
            assert (await recv_room(bob))["text"] == f"missed {i}"

        # Back from the last position seen: the welcome, what was missed
        # (her own leave included) in order, then her new join, then live.
        again = await connect(port, f"room=R&name=alice&from={seen[-1]}")
        assert await recv(again) == {"type": "welcome", "user": "alice", "room": "R"}
        got = []
        assert await recv_room(again, positions=got) == {"type": "leave", "user": "alice", "room": "R"}
        for i in range(3):
            assert await recv_room(again, positions=got) == \
                {"type": "message", "user": "bob", "room": "R", "text": f"missed {i}"}
        assert await recv_room(again, positions=got) == {"type": "join", "user": "alice", "room": "R"}
        await bob.send("live")
        assert (await recv_room(again, positions=got))["text"] == "live"
        epoch, offset = seen[-1].split("-")
        assert got == [f"{epoch}-{int(offset) + n}" for n in range(1, 7)]
        await quiet(again)

        # A from that is no position: live messages only, said once.
        bad = await connect(port, "room=R&name=carol&from=yesterday")
        assert await recv(bad) == {"type": "welcome", "user": "carol", "room": "R"}
        assert await recv(bad) == BAD_FROM
        assert await recv_room(bad) == {"type": "join", "user": "carol", "room": "R"}
        # A position the history cannot serve (ahead of it): the gone line,
        # then live messages.
        lost = await connect(port, f"room=R&name=dave&from={epoch}-9999")
        assert await recv(lost) == {"type": "welcome", "user": "dave", "room": "R"}
        # Subscribed at once in on_open: its own join (held while the history
        # was asked) comes, then the answer.
        assert await recv_room(lost) == {"type": "join", "user": "dave", "room": "R"}
        assert await recv(lost) == GONE
        await bob.send("after")
        for ws in (bad, lost):
            message = await recv_skipping_joins(ws)
            assert message["text"] == "after" and POSITION.fullmatch(message["pos"]), message
        for ws in (again, bad, lost, bob):
            await ws.close()
    run(body())


def test_chat_example_history_down():
    """Redis unreachable: a reconnect gets the cluster-down line, then live
    messages, without "pos" (none until Redis gives them one)."""
    child = start_chat("--set", "cluster.redis=127.0.0.1:1")
    try:
        async def body():
            ws = await connect(child.port_number, "room=R&name=erin&from=5-1")
            assert await recv(ws) == {"type": "welcome", "user": "erin", "room": "R"}
            # Its own join (no position while Redis is down), then the line.
            assert await recv(ws) == {"type": "join", "user": "erin", "room": "R"}
            assert await recv(ws) == HISTORY_DOWN
            await ws.send("still here")
            message = await recv_skipping_joins(ws)
            assert message["text"] == "still here" and "pos" not in message
            await ws.close()
        run(body())
    finally:
        child.kill()


def test_chat_example_as_two_instances():
    with RedisServer() as redis:
        chats = []
        try:
            for _ in range(2):
                chats.append(start_chat("--set", f"cluster.redis={redis.address}",
                                        "--set", "cluster.require=true"))
            a, b = (c.port_number for c in chats)

            async def entered(port, room, name):
                ws = await connect(port, f"room={room}&name={name}")
                assert await recv(ws) == {"type": "welcome", "user": name, "room": room}
                return ws

            async def body():
                # Each is the first in the room on its instance: its own join
                # notice (a history message, delivered from Redis' echo)
                # comes only if the instance listened to the room's channel
                # in time (see recv_skipping_joins).
                alice = await entered(a, "A", "alice")
                bob = await entered(b, "A", "bob")
                # Presence reaches Redis a moment after bob's subscription (and
                # bob's join notice reaches alice once her instance listens to
                # the room's channel: it may come, or not, meanwhile).
                for _ in range(200):
                    await alice.send("/who")
                    who = await recv_skipping_joins(alice)
                    if who["users"] == ["alice", "bob"]:
                        break
                    await asyncio.sleep(0.02)
                assert who == {"type": "who", "room": "A", "users": ["alice", "bob"]}
                await bob.send("/who")
                assert await recv_skipping_joins(bob) == {"type": "who", "room": "A", "users": ["alice", "bob"]}

                await alice.send("/msg bob across")
                dm = {"type": "direct", "from": "alice", "to": "bob", "text": "across"}
                assert await recv_skipping_joins(bob) == dm and await recv_skipping_joins(alice) == dm
                await bob.send("/msg nobody x")
                assert await recv_skipping_joins(bob) == {"type": "error", "text": "nobody is not online"}
                await alice.close()
                await bob.close()
            run(body())
        finally:
            for c in chats:
                c.kill()
