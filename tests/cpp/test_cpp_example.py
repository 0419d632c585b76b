"""examples/cpp (wsgate-cpp-rooms, the C++ binding's example) against real
websockets clients: /echo comes back to the sender alone, other messages
reach the sender's room and no other, joins and leaves are announced, and
SIGTERM drains: every client gets 1012 and the program exits 0.

The binary comes from WSGATE_CPP_ROOMS (ctest sets it, tests/cpp/cpp.cmake).
"""

import asyncio
import os
import re
import select
import signal
import subprocess
import time

import pytest
import websockets

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def rooms_binary():
    path = os.environ.get("WSGATE_CPP_ROOMS")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("WSGATE_CPP_ROOMS must name the wsgate-cpp-rooms program (run through ctest)")
    return path


@pytest.fixture
def rooms():
    proc = subprocess.Popen(
        [rooms_binary(), "--port", "0", "--set", "listen.host=127.0.0.1",
         "--set", "server.drain_ms=300"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        line = proc.stdout.readline() if ready else ""
        m = re.match(r"^listening on ws://127\.0\.0\.1:(\d+)/$", line.strip())
        if not m:
            proc.kill()
            pytest.fail(f"wsgate-cpp-rooms did not say it listens: {line!r} {proc.stderr.read()}")
        yield proc, int(m.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def recv(ws, timeout=5.0):
    return await asyncio.wait_for(ws.recv(), timeout)


async def quiet(ws, timeout=0.2):
    try:
        msg = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        return True
    pytest.fail(f"unexpected message {msg!r}")


def test_echo_rooms_leave_and_drain(rooms):
    proc, port = rooms
    url = f"ws://127.0.0.1:{port}/"

    async def scenario():
        a1 = await websockets.connect(url + "?room=a", open_timeout=10)
        joined = await recv(a1)
        assert re.fullmatch(r"\+ \d+ joined a", joined), joined
        a2 = await websockets.connect(url + "?x=1&room=a", open_timeout=10)
        joined2 = await recv(a2)
        assert re.fullmatch(r"\+ \d+ joined a", joined2) and joined2 != joined
        assert await recv(a1) == joined2
        b1 = await websockets.connect(url, open_timeout=10)
        assert re.fullmatch(r"\+ \d+ joined lobby", await recv(b1))

        await a1.send("/echo hi there")
        assert await recv(a1) == "hi there"
        await quiet(a2)

        await a1.send("hello room")
        assert await recv(a1) == "hello room"
        assert await recv(a2) == "hello room"
        await a2.send(b"\x00\x01\xff")
        assert await recv(a1) == b"\x00\x01\xff"
        assert await recv(a2) == b"\x00\x01\xff"
        await quiet(b1)

        await b1.close()
        await quiet(a1)
        await a2.close()
        assert re.fullmatch(r"- \d+ left \(peer\)", await recv(a1))

        # SIGTERM: a drain over server.drain_ms, close 1012, exit 0.
        others = [await websockets.connect(url + "?room=a", open_timeout=10) for _ in range(3)]
        proc.send_signal(signal.SIGTERM)
        for ws in [a1, *others]:
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1012, ws.close_code

    asyncio.run(scenario())
    start = time.monotonic()
    try:
        rc = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("wsgate-cpp-rooms did not exit within 10 s of SIGTERM")
    err = proc.stderr.read()
    assert rc == 0, err
    assert time.monotonic() - start < 10
    for marker in SANITIZER_MARKERS:
        assert marker not in err, err


def test_bad_argument_exits_2():
    out = subprocess.run([rooms_binary(), "--nope", "x"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "usage:" in out.stderr
    out = subprocess.run([rooms_binary(), "--set", "listen.port=70000"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1 and "WSG_EINVAL" in out.stderr and "listen.port" in out.stderr
