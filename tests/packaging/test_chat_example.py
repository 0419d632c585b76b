"""wsgate-chat (examples/chat) against Python websockets clients: its command
line and ready line, the page at /, rooms kept apart, /who, /msg, errors,
the close codes the page shows for a bad room or name, JWT users, a graceful
stop on SIGTERM and SIGINT, and the resume protocol: every room message
carries its position ("pos"), and a client back with ?from=POS gets exactly
what it missed, or an error line saying why not. tests/browser drives the
same server in Chromium."""

import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import subprocess
import time

import pytest
import websockets

from echo_proc import ChatProcess, chat_binary, stop_echo_processes
from procutil import die_with_parent

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "..", "..", "examples", "chat", "index.html")
POS_RE = re.compile(r"[0-9]+-[0-9]+")
ROOM_EVENTS = ("join", "leave", "message")  # published to the room: they carry "pos"
GONE = {"type": "error", "text": "some missed messages are no longer kept: you may have missed messages before this point"}
BAD_FROM = {"type": "error", "text": "bad from position: live messages only"}


@pytest.fixture
def start_chat():
    procs = []

    def start(*args):
        p = ChatProcess(*args)
        procs.append(p)
        p.wait_listening()
        return p

    yield start
    stop_echo_processes(procs)


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(port, query):
    return websockets.connect(f"ws://127.0.0.1:{port}/chat?{query}", open_timeout=10, close_timeout=5,
                              ping_interval=None)


async def recv_positioned(ws, timeout=10):
    """The next message and its position (None for what is not a room
    message). A room message carries "pos" as its first field (the chat's
    history hook puts it there); nothing else carries one."""
    text = await asyncio.wait_for(ws.recv(), timeout)
    m = json.loads(text)
    pos = m.pop("pos", None)
    if m["type"] in ROOM_EVENTS:
        assert pos is not None and POS_RE.fullmatch(pos) and text.startswith('{"pos":"'), text
        return m, tuple(int(x) for x in pos.split("-"))
    assert pos is None, text
    return m, None


async def recv(ws, timeout=10):
    return (await recv_positioned(ws, timeout))[0]


async def nothing_more(ws, timeout=0.3):
    with pytest.raises(asyncio.TimeoutError):
        m = await recv(ws, timeout)
        pytest.fail(f"unexpected {m}")


async def recv_until(ws, kind, timeout=10):
    """The next message of type `kind`, skipping join/leave notices."""
    while True:
        m = await recv(ws, timeout)
        if m["type"] == kind:
            return m
        assert m["type"] in ("join", "leave"), f"wanted {kind}, got {m}"


async def joined(port, room, name=None):
    ws = await connect(port, f"room={room}" + (f"&name={name}" if name else ""))
    welcome = await recv(ws)
    assert welcome["type"] == "welcome" and welcome["room"] == room
    if name:
        assert welcome["user"] == name
    assert await recv(ws) == {"type": "join", "user": welcome["user"], "room": room}
    return ws, welcome["user"]


def test_help_and_bad_arguments():
    out = subprocess.run([chat_binary(), "--help"], capture_output=True, text=True, timeout=10,
                         preexec_fn=die_with_parent)
    assert out.returncode == 0 and out.stdout.startswith("usage: wsgate-chat")
    bad = subprocess.run([chat_binary(), "--set", "server.path=/ws"], capture_output=True, text=True,
                         timeout=10, preexec_fn=die_with_parent)
    assert bad.returncode == 2 and "the page connects to /chat" in bad.stderr
    bad = subprocess.run([chat_binary(), "--set", "log.levl=debug"], capture_output=True, text=True,
                         timeout=10, preexec_fn=die_with_parent)
    assert bad.returncode == 2 and "log.level" in bad.stderr


def test_page_is_served(start_chat):
    p = start_chat()
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    conn.request("GET", "/?room=lobby&name=ann")
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200
    assert resp.getheader("content-type") == "text/html; charset=utf-8"
    with open(PAGE, "rb") as f:
        assert body == f.read()


def test_rooms_who_and_direct_messages(start_chat):
    p = start_chat()

    async def body():
        alice, _ = await joined(p.port, "A", "alice")
        bob, _ = await joined(p.port, "A", "bob")
        assert await recv(alice) == {"type": "join", "user": "bob", "room": "A"}
        carol, guest = await joined(p.port, "B")
        assert re.fullmatch(r"guest-\d+", guest)
        lobby = await connect(p.port, "name=dan")  # no room: the lobby
        assert (await recv(lobby))["room"] == "lobby"

        text = 'hi "bob" \\ \u00e9\u2713\n\ttab'
        await alice.send(text)
        want = {"type": "message", "user": "alice", "room": "A", "text": text}
        assert await recv(alice) == want
        assert await recv(bob) == want
        await bob.send("hello alice")
        assert (await recv(alice))["text"] == "hello alice"
        assert (await recv(bob))["text"] == "hello alice"

        # A second tab of bob's: /who names him once.
        bob2, _ = await joined(p.port, "A", "bob")
        await recv_until(alice, "join")
        await alice.send("/who")
        assert await recv_until(alice, "who") == {"type": "who", "room": "A", "users": ["alice", "bob"]}

        # /msg reaches every connection of the user, in any room, and the sender.
        await carol.send("/msg bob psst")
        dm = {"type": "direct", "from": guest, "to": "bob", "text": "psst"}
        assert await recv_until(bob, "direct") == dm
        assert await recv_until(bob2, "direct") == dm
        assert await recv(carol) == dm
        await alice.send("/msg nobody hello")
        assert await recv(alice) == {"type": "error", "text": "nobody is not online"}
        for bad, says in [("/msg bob", "usage: /msg USER text"), ("/dance", "unknown command"),
                          ("x" * 2001, "at most 2000 bytes")]:
            await alice.send(bad)
            assert says in (await recv(alice))["text"]
        await alice.send(b"\x00binary")
        assert await recv(alice) == {"type": "error", "text": "send text messages"}

        # Room B heard nothing of A: its next message is its own.
        await carol.send("anyone?")
        assert (await recv(carol))["text"] == "anyone?"

        await bob2.close()
        assert await recv(alice) == {"type": "leave", "user": "bob", "room": "A"}
        for ws in (alice, bob, carol, lobby):
            await ws.close()
    run(body())


def test_bad_room_or_name_closes_with_a_reason(start_chat):
    p = start_chat()

    async def body():
        for query, code, says in [("room=no%20spaces", 4001, "room must be"), ("room=" + "r" * 33, 4001, "room must be"),
                                  ("room=", 4001, "room must be"), ("room=A&name=b%C3%A9", 4002, "name must be"),
                                  ("room=A&name=" + "n" * 33, 4002, "name must be")]:
            ws = await connect(p.port, query)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert (ws.close_code, says in ws.close_reason) == (code, True), (query, ws.close_reason)
    run(body())


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(secret, claims):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_jwt_users(start_chat, tmp_path):
    secret = os.urandom(32)
    (tmp_path / "secret").write_bytes(secret)
    p = start_chat("--set", "auth.mode=jwt", "--set", f"auth.jwt.secret_file={tmp_path / 'secret'}")
    token = hs256(secret, {"sub": "erin@example.com", "exp": int(time.time()) + 300})

    async def body():
        # The token's user, whatever name the query claims.
        ws = await connect(p.port, f"room=A&name=mallory&access_token={token}")
        assert await recv(ws) == {"type": "welcome", "user": "erin@example.com", "room": "A"}
        await recv(ws)
        await ws.send("/msg erin@example.com note to self")
        assert (await recv(ws))["text"] == "note to self"
        await ws.close()
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await connect(p.port, "room=A&name=mallory")
        assert e.value.status_code == 401
    run(body())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_gracefully(start_chat, sig):
    p = start_chat()

    async def body():
        ws, _ = await joined(p.port, "A", "zoe")
        p.proc.send_signal(sig)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert (ws.close_code, ws.close_reason) == (1001, "going away")
    run(body())
    assert p.proc.wait(timeout=10) == 0
    p.join_readers()
    p.wait_for_event("stop")
    p.assert_no_sanitizer_reports()


def text_of(pos):
    return f"{pos[0]}-{pos[1]}"


async def rejoined(port, room, name, query=""):
    """Connects again; the welcome comes first, as on any join."""
    ws = await connect(port, f"room={room}&name={name}{query}")
    assert await recv(ws) == {"type": "welcome", "user": name, "room": room}
    return ws


def test_reconnect_from_gets_exactly_what_was_missed(start_chat):
    p = start_chat()
    missed = 5

    async def body():
        alice, _ = await joined(p.port, "A", "alice")
        bob = await rejoined(p.port, "A", "bob")
        m, last = await recv_positioned(bob)  # his own join: the last he saw
        assert m == {"type": "join", "user": "bob", "room": "A"}
        assert await recv(alice) == m
        await bob.close()
        assert await recv(alice) == {"type": "leave", "user": "bob", "room": "A"}
        for i in range(missed):
            await alice.send(f"missed {i}")
            assert (await recv(alice))["text"] == f"missed {i}"

        bob = await rejoined(p.port, "A", "bob", f"&from={text_of(last)}")
        # What he missed, in order, each once, positions one after the other...
        want = [{"type": "leave", "user": "bob", "room": "A"}]
        want += [{"type": "message", "user": "alice", "room": "A", "text": f"missed {i}"} for i in range(missed)]
        want += [{"type": "join", "user": "bob", "room": "A"}]  # ...then his join...
        for w in want:
            m, pos = await recv_positioned(bob)
            assert (m, pos) == (w, (last[0], last[1] + 1)), f"after {last}"
            last = pos
        # ...and the live messages.
        await alice.send("live")
        m, last = await recv_positioned(bob)
        assert m == {"type": "message", "user": "alice", "room": "A", "text": "live"}
        await nothing_more(bob)
        # From the newest position: nothing to replay.
        bob2 = await rejoined(p.port, "A", "bob", f"&from={text_of(last)}")
        assert await recv_positioned(bob2) == ({"type": "join", "user": "bob", "room": "A"}, (last[0], last[1] + 1))
        await nothing_more(bob2)
        for ws in (alice, bob, bob2):
            await ws.close()
    run(body())


def test_bad_or_lost_from_gives_an_error_line_then_live_messages(start_chat):
    p = start_chat("--set", "cluster.history_size=3")  # the chat's defaults can be overridden

    async def body():
        alice, _ = await joined(p.port, "A", "alice")
        seen = []  # alice's view of the room: (message, position)

        async def alice_sees(n):
            for _ in range(n):
                seen.append(await recv_positioned(alice))
            return seen[-1]

        carol = await rejoined(p.port, "A", "carol")
        _, old = await recv_positioned(carol)
        await alice_sees(1)
        await carol.close()
        for i in range(4):  # with carol's leave: 5 messages, 3 kept
            await alice.send(f"gone {i}")
        _, last = await alice_sees(5)

        # Too old (trimmed), ahead of the history, of another epoch: nothing
        # replayed, one line saying so, then the join and the live messages.
        for pos in [old, (last[0], last[1] + 5), (last[0] + 1, last[1])]:
            ws = await rejoined(p.port, "A", "carol", f"&from={text_of(pos)}")
            assert await recv(ws) == GONE, pos
            assert await recv(ws) == {"type": "join", "user": "carol", "room": "A"}
            await alice.send(f"live after {text_of(pos)}")
            assert (await recv(ws))["text"] == f"live after {text_of(pos)}"
            await ws.close()
            await alice_sees(3)  # join, message, leave
        # Not a position: the same, with its own line.
        for bad in ["", "12", "1-x", "-1-2", "1-2-3", "9" * 30 + "-1", "1-" + "9" * 60]:
            ws = await rejoined(p.port, "A", "carol", f"&from={bad}")
            assert await recv(ws) == BAD_FROM, bad
            assert await recv(ws) == {"type": "join", "user": "carol", "room": "A"}
            await ws.close()
            await alice_sees(2)  # join, leave
        # The oldest position a history of 3 can resume from: the 3 kept.
        _, last = seen[-1]
        ws = await rejoined(p.port, "A", "carol", f"&from={text_of((last[0], last[1] - 3))}")
        for want in seen[-3:]:
            assert await recv_positioned(ws) == want
        assert await recv(ws) == {"type": "join", "user": "carol", "room": "A"}
        await nothing_more(ws)
        await ws.close()
        await alice.close()
    run(body())


def test_rooms_without_history(start_chat):
    p = start_chat("--set", "cluster.history_topics=news")

    async def body():
        ws = await connect(p.port, "room=A&name=dan")
        assert json.loads(await ws.recv()) == {"type": "welcome", "user": "dan", "room": "A"}
        assert json.loads(await ws.recv()) == {"type": "join", "user": "dan", "room": "A"}  # no "pos"
        await ws.close()
        ws = await rejoined(p.port, "A", "dan", "&from=1-1")
        assert await recv(ws) == {"type": "error", "text": "this server keeps no history of the room: "
                                                             "missed messages are not shown"}
        assert json.loads(await ws.recv()) == {"type": "join", "user": "dan", "room": "A"}
        await ws.close()
    run(body())
