"""The chat demo as two instances (issue 12): one redis-server started here on a
free loopback port, two wsgate-chat processes with cluster.redis pointing at it,
Python websockets clients on either. Rooms (topics), /msg (user send), /who and
"USER is not online" (presence) work across the instances, and a client that
reconnects to the other instance with ?from=POS gets exactly what it missed
(history in Redis). These tests pin that, so the README's Cluster section
stays true."""

import asyncio
import json
import os
import re
import sys
import time

import pytest
import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packaging"))
from echo_proc import ChatProcess, stop_echo_processes  # noqa: E402
from redis_server import RedisServer, redis_command  # noqa: E402

# ---------------------------------------------------------------- Redis

@pytest.fixture
def redis_port():
    with RedisServer() as r:
        yield r.port


@pytest.fixture
def two_chats(redis_port):
    procs = []
    try:
        for _ in range(2):
            p = ChatProcess("--set", f"cluster.redis=127.0.0.1:{redis_port}")
            procs.append(p)
            p.wait_listening()
        for p in procs:
            p.wait_for_event("cluster_up", timeout=10)
        yield redis_port, procs[0].port, procs[1].port
    finally:
        stop_echo_processes(procs)


def wait_subscribed(redis_port, topic, instances, timeout=5.0):
    """Until `instances` instances listen to the topic's channel: a publish
    before an instance's SUBSCRIBE is in place does not reach it (pub/sub is at
    most once), so the test waits instead of sleeping."""
    deadline = time.monotonic() + timeout
    while True:
        chans = redis_command(redis_port, "PUBSUB", "CHANNELS", f"*{topic}")
        if chans:
            reply = redis_command(redis_port, "PUBSUB", "NUMSUB", *chans)
            if max(reply[1::2]) >= instances:
                return
        assert time.monotonic() < deadline, f"{instances} instances not subscribed to {topic}: {chans}"
        time.sleep(0.02)


# ---------------------------------------------------------------- clients

def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


ROOM_EVENTS = ("join", "leave", "message")  # published to the room: they carry "pos"


async def recv_positioned(ws, timeout=5):
    """The next message and its position: a room message's "pos" (its
    first field), None for the others, which carry none."""
    text = await asyncio.wait_for(ws.recv(), timeout)
    m = json.loads(text)
    pos = m.pop("pos", None)
    if m["type"] in ROOM_EVENTS:
        assert pos is not None and re.fullmatch(r"[0-9]+-[0-9]+", pos) and text.startswith('{"pos":"'), text
        return m, tuple(int(x) for x in pos.split("-"))
    assert pos is None, text
    return m, None


async def recv(ws, timeout=5):
    return (await recv_positioned(ws, timeout))[0]


async def recv_until(ws, kind, timeout=5):
    """The next message of type `kind`, skipping join/leave notices."""
    while True:
        m = await recv(ws, timeout)
        if m["type"] == kind:
            return m
        assert m["type"] in ("join", "leave"), f"wanted {kind}, got {m}"


async def joined(port, room, name, query=""):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/chat?room={room}&name={name}{query}", open_timeout=10,
                                  close_timeout=5, ping_interval=None)
    welcome = await recv(ws)
    assert welcome == {"type": "welcome", "user": name, "room": room}
    return ws


def test_rooms_and_direct_messages_cross_instances(two_chats):
    redis_port, port_a, port_b = two_chats

    async def scenario():
        alice = await joined(port_a, "lobby", "alice")
        wait_subscribed(redis_port, "room:lobby", 1)
        bob = await joined(port_b, "lobby", "bob")
        carol = await joined(port_b, "games", "carol")
        wait_subscribed(redis_port, "room:lobby", 2)

        # Rooms: both ways across the instances, and a join notice too.
        while True:  # alice's own join first, then bob's from B (A listened before bob joined)
            m = await recv(alice)
            if m["type"] == "join" and m["user"] == "bob":
                break
        await alice.send("hello from A")
        m = await recv_until(bob, "message")
        assert m == {"type": "message", "user": "alice", "room": "lobby", "text": "hello from A"}
        m = await recv_until(alice, "message")  # alice's own copy, delivered locally
        assert m["text"] == "hello from A"
        await bob.send("hello from B")
        m = await recv_until(alice, "message")
        assert m == {"type": "message", "user": "bob", "room": "lobby", "text": "hello from B"}
        assert (await recv_until(bob, "message"))["text"] == "hello from B"  # bob's own copy

        # /msg from A reaches carol on B (another room), and alice gets her copy.
        await alice.send("/msg carol psst")
        want = {"type": "direct", "from": "alice", "to": "carol", "text": "psst"}
        assert await recv_until(carol, "direct") == want
        assert await recv_until(alice, "direct") == want
        # recv_until would have failed on any lobby message reaching carol, in games.

        # And back from B to A.
        await carol.send("/msg alice hi back")
        want = {"type": "direct", "from": "carol", "to": "alice", "text": "hi back"}
        assert await recv_until(alice, "direct") == want
        assert await recv_until(carol, "direct") == want

        # /who lists the room on every instance (presence), from either side.
        await alice.send("/who")
        assert (await recv_until(alice, "who"))["users"] == ["alice", "bob"]
        await bob.send("/who")
        assert (await recv_until(bob, "who"))["users"] == ["alice", "bob"]
        await carol.send("/who")
        assert (await recv_until(carol, "who"))["users"] == ["carol"]
        # /msg to nobody: presence knows nobody is online anywhere, and says so; no copy is sent.
        await alice.send("/msg nobody anyone?")
        m = await recv_until(alice, "error")
        assert m == {"type": "error", "text": "nobody is not online"}

        # bob leaves B: alice on A sees it.
        await bob.close()
        m = await recv(alice)
        assert m == {"type": "leave", "user": "bob", "room": "lobby"}
        # carol still saw no lobby traffic.
        with pytest.raises(asyncio.TimeoutError):
            await recv(carol, timeout=0.2)
        for ws in (alice, carol):
            await ws.close()

    run(scenario())


def test_reconnect_to_the_other_instance_gets_what_was_missed(two_chats):
    redis_port, port_a, port_b = two_chats
    missed = 5

    async def scenario():
        alice = await joined(port_b, "lobby", "alice")
        wait_subscribed(redis_port, "room:lobby", 1)
        bob = await joined(port_a, "lobby", "bob")
        # bob's own join comes first, though it was published before Redis
        # confirmed that A listens to the room's channel: A reads the history
        # again then. What he saw last is alice's message.
        m, _ = await recv_positioned(bob)
        assert m == {"type": "join", "user": "bob", "room": "lobby"}
        wait_subscribed(redis_port, "room:lobby", 2)
        await alice.send("hello bob")
        while True:
            m, last = await recv_positioned(bob)  # the last he saw
            if m.get("text") == "hello bob":
                break
        while (await recv(alice)).get("text") != "hello bob":  # alice's own join, bob's, her message
            pass
        await bob.close()
        assert await recv(alice) == {"type": "leave", "user": "bob", "room": "lobby"}
        for i in range(missed):
            await alice.send(f"missed {i}")
            assert (await recv(alice))["text"] == f"missed {i}"

        # bob comes back on B, the other instance: the history is Redis'.
        bob = await joined(port_b, "lobby", "bob", f"&from={last[0]}-{last[1]}")
        want = [{"type": "leave", "user": "bob", "room": "lobby"}]
        want += [{"type": "message", "user": "alice", "room": "lobby", "text": f"missed {i}"}
                 for i in range(missed)]
        want += [{"type": "join", "user": "bob", "room": "lobby"}]
        for w in want:
            m, pos = await recv_positioned(bob)
            assert (m, pos) == (w, (last[0], last[1] + 1)), f"after {last}"
            last = pos
        await alice.send("live")
        assert await recv(bob) == {"type": "message", "user": "alice", "room": "lobby", "text": "live"}
        with pytest.raises(asyncio.TimeoutError):
            m = await recv(bob, timeout=0.3)
            pytest.fail(f"unexpected {m}")

        # A position from another epoch (of a history lost): the error line, then live.
        carol = await joined(port_b, "lobby", "carol", f"&from={last[0] + 1}-1")
        assert await recv(carol) == {"type": "error", "text": "some missed messages are no longer kept: "
                                                              "you may have missed messages before this point"}
        assert await recv(carol) == {"type": "join", "user": "carol", "room": "lobby"}
        for ws in (alice, bob, carol):
            await ws.close()

    run(scenario())


def test_reconnect_while_redis_is_down():
    """No history to read: the error line, then the live messages, which
    carry no "pos" until Redis numbers them."""
    with RedisServer() as redis:
        chat = ChatProcess("--set", f"cluster.redis=127.0.0.1:{redis.port}")
        try:
            chat.wait_listening()
            chat.wait_for_event("cluster_up", timeout=10)

            async def scenario():
                alice = await joined(chat.port, "lobby", "alice")
                wait_subscribed(redis.port, "room:lobby", 1)
                await alice.send("before the outage")
                while True:
                    m, last = await recv_positioned(alice)
                    if m.get("text") == "before the outage":
                        break
                redis.kill()
                chat.wait_for_event("cluster_down", timeout=10)
                bob = await joined(chat.port, "lobby", "bob", f"&from={last[0]}-{last[1]}")
                assert await recv(bob) == {"type": "error", "text": "history unavailable (cluster down): "
                                                                    "missed messages are not shown"}
                join = {"type": "join", "user": "bob", "room": "lobby"}
                assert json.loads(await asyncio.wait_for(bob.recv(), 5)) == join  # no "pos": not numbered yet
                assert json.loads(await asyncio.wait_for(alice.recv(), 5)) == join
                for ws in (alice, bob):
                    await ws.close()

            run(scenario())
        finally:
            stop_echo_processes([chat])
