"""python/examples/chat.py, the chat demo on the binding's topics API, run as
a child process and driven by websockets clients: the page at /, two rooms
kept apart, messages, /who, /msg, a bad room, and a graceful SIGTERM."""

import asyncio
import http.client
import json
import os
import signal

import pytest
import websockets

from conftest import Child, run

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CHAT = os.path.join(ROOT, "python", "examples", "chat.py")
PAGE = os.path.join(ROOT, "examples", "chat", "index.html")


@pytest.fixture
def chat():
    child = Child([CHAT, "--host", "127.0.0.1", "--port", "0"])
    try:
        line = child.wait_line("open http://127.0.0.1:")
        assert line.rstrip("\n").endswith("/ in a browser"), line
        child.port_number = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
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
