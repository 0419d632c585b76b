"""Executes every Python example in python/README.md in a child interpreter,
with a real client driving the servers among them. Examples that serve until
stopped are stopped once with Ctrl-C (SIGINT) and once with a plain `kill`
(SIGTERM): both must close clients with 1001 and exit 0."""

import asyncio
import os
import re
import signal

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from conftest import connect, recv, run

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def examples():
    """(name, code) for every ```python block; the name comes from an
    '<!-- example: NAME -->' line right before it (unnamed blocks get one)."""
    text = open(README, encoding="utf-8").read()
    found = []
    pattern = re.compile(r"(?:<!-- example: (\S+) -->\n)?```python\n(.*?)```", re.S)
    for i, m in enumerate(pattern.finditer(text)):
        found.append((m.group(1) or f"block{i}", m.group(2)))
    return found


async def drive_broadcast(port, proc, sig):
    async with connect(f"ws://127.0.0.1:{port}/") as a, connect(f"ws://127.0.0.1:{port}/") as b:
        await asyncio.sleep(0.2)
        await a.send("hello everyone")
        assert await recv(a) == "hello everyone"
        assert await recv(b) == "hello everyone"
        await b.send(b"\x00binary")
        assert await recv(a) == b"\x00binary"
        proc.signal_when_caught(sig)
        with pytest.raises(ConnectionClosed) as info:
            await recv(a, timeout=20)
        assert info.value.code == 1001


async def drive_echo(port, proc, sig):
    async with connect(f"ws://127.0.0.1:{port}/room?name=ann") as ws:
        assert await recv(ws) == "welcome name=ann to /room"
        await ws.send("ping")
        assert await recv(ws) == "ping"
        await ws.send("quit")
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws, timeout=20)
        assert info.value.code == 1001
    await asyncio.sleep(0.1)


async def drive_threads(port, proc, sig):
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        assert (await recv(ws)).startswith("tick ")
        assert (await recv(ws)).startswith("tick ")
        proc.signal_when_caught(sig)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await recv(ws, timeout=20)
        assert info.value.code == 1001


async def drive_asyncio(port, proc, sig):
    async with connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send("async echo")
        assert await recv(ws) == "async echo"
        proc.signal_when_caught(sig)
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws, timeout=20)
        assert info.value.code == 1001


async def drive_auth(port, proc, sig):
    tokens = dict(re.findall(r"^token (\w+): (\S+)$", proc.out(), re.M))
    url = f"ws://127.0.0.1:{port}/chat"
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    async with connect(url, extra_headers=alice) as ws:
        assert await recv(ws) == "hello alice (member)"
    async with connect(f"{url}?access_token={tokens['alice']}") as ws:
        assert await recv(ws) == "hello alice (member)"
    for target, headers, status in (
            (url, {}, 401),                                                   # no token
            (url, {"Authorization": f"Bearer {tokens['mallory']}"}, 403),     # refused
            (f"ws://127.0.0.1:{port}/other", alice, 401)):                    # returned False
        with pytest.raises(InvalidStatusCode) as info:
            async with connect(target, extra_headers=headers):
                pass
        assert info.value.status_code == status
    proc.signal_when_caught(sig)


async def drive_history(port, proc, sig):
    url = f"ws://127.0.0.1:{port}/"
    async with connect(url) as a:
        await a.send("one")
        pos, text = (await recv(a)).split(" ", 1)
        assert text == "one"
        epoch = pos.split("-")[0]
        await a.send("two")
        assert await recv(a) == f"{epoch}-2 two"
    async with connect(url) as b:
        await b.send("three")
        assert await recv(b) == f"{epoch}-3 three"
    async with connect(f"{url}?from={pos}") as c:  # back after "one"
        assert await recv(c) == f"{epoch}-2 two"
        assert await recv(c) == f"{epoch}-3 three"
    async with connect(f"{url}?from={epoch}-99") as d:
        assert await recv(d) == "some messages are no longer kept: resync"
        await d.send("quit")
        with pytest.raises(ConnectionClosed) as info:
            await recv(d, timeout=20)
        assert info.value.code == 1001


DRIVERS = {
    "broadcast": drive_broadcast,
    "echo": drive_echo,
    "threads": drive_threads,
    "asyncio": drive_asyncio,
    "auth": drive_auth,
    "history": drive_history,
}
CHECKS = {
    "echo": lambda out, err: "left: 1001" in err,
    "options": lambda out, err: "listen.port" in out and "WSG_EINVAL option 'listen.port'" in out,
    "presence": lambda out, err: out.splitlines() == ["b'{\"items\": 3}'", "[]", "None"],
}


# The examples that serve until a signal stops them.
STOPPED_BY_SIGNAL = {"broadcast", "threads", "asyncio", "auth"}


def runs():
    """(name, code, signal or None) for every example and way to stop it."""
    for name, code in examples():
        if name in STOPPED_BY_SIGNAL:
            yield name, code, signal.SIGINT
            yield name, code, signal.SIGTERM
        else:
            yield name, code, None


def test_every_driver_has_its_example():
    names = [name for name, _ in examples()]
    assert set(DRIVERS) <= set(names), names
    assert STOPPED_BY_SIGNAL <= set(DRIVERS)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name,code,sig", list(runs()),
                         ids=[n + (f"-{s.name}" if s else "") for n, _, s in runs()])
def test_readme_example(name, code, sig, child, monkeypatch, tmp_path):
    monkeypatch.setenv("PORT", "0")
    path = tmp_path / f"readme_example_{name}.py"
    path.write_text(code)
    proc = child([str(path)], cwd=str(tmp_path))
    driver = DRIVERS.get(name)
    if driver is not None:
        port = proc.port()
        run(driver(port, proc, sig))
    assert proc.wait() == 0, f"stdout={proc.out()!r} stderr={proc.err()!r}"
    assert "Traceback" not in proc.err(), proc.err()
    check = CHECKS.get(name)
    if check is not None:
        assert check(proc.out(), proc.err()), f"stdout={proc.out()!r} stderr={proc.err()!r}"
