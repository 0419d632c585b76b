"""python/examples/chat.py, the chat demo on the binding's topics API, run as
a child process and driven by websockets clients: the page at /, two rooms
kept apart, messages, /who, /msg, a bad room, and a graceful SIGTERM; then
two of them on one real redis-server, where /who lists the room on both
instances and /msg finds a user on the other one (or says it is not online)."""

import asyncio
import http.client
import json
import os
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


async def recv(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def joined(port, room, name):
    ws = await connect(port, f"room={room}&name={name}")
    assert await recv(ws) == {"type": "welcome", "user": name, "room": room}
    assert await recv(ws) == {"type": "join", "user": name, "room": room}
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
        assert await recv(alice) == {"type": "join", "user": "bob", "room": "A"}
        carol = await joined(port, "B", "carol")

        await alice.send("hello \u2713")
        want = {"type": "message", "user": "alice", "room": "A", "text": "hello \u2713"}
        assert await recv(bob) == want and await recv(alice) == want
        await bob.send("hi alice")
        assert (await recv(alice))["text"] == "hi alice"
        assert (await recv(bob))["text"] == "hi alice"

        await bob.send("/who")
        assert await recv(bob) == {"type": "who", "room": "A", "users": ["alice", "bob"]}
        await alice.send("/msg carol psst")
        dm = {"type": "direct", "from": "alice", "to": "carol", "text": "psst"}
        assert await recv(carol) == dm and await recv(alice) == dm
        await alice.send("/msg nobody x")
        assert await recv(alice) == {"type": "error", "text": "nobody is not online"}

        # B heard nothing from A: carol's next message is her own.
        await carol.send("anyone?")
        assert (await recv(carol))["text"] == "anyone?"

        await bob.close()
        assert await recv(alice) == {"type": "leave", "user": "bob", "room": "A"}

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


def test_chat_example_as_two_instances():
    with RedisServer() as redis:
        chats = []
        try:
            for _ in range(2):
                chats.append(start_chat("--set", f"cluster.redis={redis.address}",
                                        "--set", "cluster.require=true"))
            a, b = (c.port_number for c in chats)

            async def body():
                alice = await joined(a, "A", "alice")
                bob = await joined(b, "A", "bob")
                # Presence reaches Redis a moment after bob's subscription (and
                # bob's join notice reaches alice once her instance listens to
                # the room's channel: it may come, or not, meanwhile).
                for _ in range(200):
                    await alice.send("/who")
                    who = await recv(alice)
                    while who["type"] == "join":
                        who = await recv(alice)
                    if who["users"] == ["alice", "bob"]:
                        break
                    await asyncio.sleep(0.02)
                assert who == {"type": "who", "room": "A", "users": ["alice", "bob"]}
                await bob.send("/who")
                assert await recv(bob) == {"type": "who", "room": "A", "users": ["alice", "bob"]}

                await alice.send("/msg bob across")
                dm = {"type": "direct", "from": "alice", "to": "bob", "text": "across"}
                assert await recv(bob) == dm and await recv(alice) == dm
                await bob.send("/msg nobody x")
                assert await recv(bob) == {"type": "error", "text": "nobody is not online"}
                await alice.close()
                await bob.close()
            run(body())
        finally:
            for c in chats:
                c.kill()
