"""The wsgate-echo example as a user sees it: command line, stdout contract,
echo, limits, signals and JSON logs on stderr.

Run with /usr/bin/python3 -m pytest -q -p no:cacheprovider test_echo_example.py
and WSGATE_ECHO=/path/to/wsgate-echo (ctest does both). Fixtures: conftest.py, echo_proc.py.
"""

import asyncio
import os
import re
import signal
import subprocess
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from echo_proc import LISTEN_RE, SANITIZER_MARKERS, run_echo

# Every option name the library documents today (lib/options.cpp). Listed here
# rather than read from --help, which would make the check circular.
KNOWN_OPTIONS = [
    "listen.host",
    "listen.port",
    "server.path",
    "limits.max_message_bytes",
    "limits.max_connections",
    "log.level",
    "tuning.rx_buffer_bytes",
    "tuning.write_batch_bytes",
]

TEST_TIMEOUT = 30.0


def run(coro, timeout=TEST_TIMEOUT):
    """Runs one async test body with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(url, **kw):
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    kw.setdefault("ping_interval", None)
    return websockets.connect(url, **kw)


# ---------------------------------------------------------------- command line

def test_help_lists_every_option():
    r = run_echo("--help")
    assert r.returncode == 0, r.stderr
    assert not any(m in r.stderr for m in SANITIZER_MARKERS), r.stderr
    assert r.stdout.startswith("usage: wsgate-echo"), r.stdout[:200]
    listed = set(re.findall(r"^\s+([a-z_]+\.[a-z_.]+)\s", r.stdout, re.MULTILINE))
    missing = [name for name in KNOWN_OPTIONS if name not in listed]
    assert not missing, f"--help does not list {missing}:\n{r.stdout}"
    for flag in ("--host", "--port", "--set", "--help"):
        assert flag in r.stdout


README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def readme_options():
    """{name: (type, default, range, doc)} from README.md's option table,
    which the readme test keeps equal to the core's table."""
    text = open(README, encoding="utf-8").read()
    table = text.split("<!-- options-table:begin -->", 1)[1].split("<!-- options-table:end -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip().replace("\x00", "|") for c in
                 line.replace("\\|", "\x00").strip("|").split("|")]
        name, typ, default, rng, doc = cells
        unquote = lambda c: c[1:-1] if c.startswith("`") and c.endswith("`") else c
        default = "" if default == "(empty)" else unquote(default)
        rows[unquote(name)] = (typ, default, unquote(rng), doc)
    return rows


def parse_option_list(text):
    """{name: (type, default, range, doc)} from a --list-options listing."""
    entries = re.findall(r'^  (\S+) +(\S+) +default "(.*?)"(?:, range (\S+))?\n      (.*)$',
                         text, re.MULTILINE)
    return {name: (typ, default, rng, doc) for name, typ, default, rng, doc in entries}


def test_list_options_gives_every_field_of_every_option():
    expected = readme_options()
    assert len(expected) >= len(KNOWN_OPTIONS), expected
    r = run_echo("--list-options")
    assert r.returncode == 0, r.stderr
    assert not any(m in r.stderr for m in SANITIZER_MARKERS), r.stderr
    listed = parse_option_list(r.stdout)
    assert listed == expected
    assert len(r.stdout.splitlines()) == 2 * len(expected)  # nothing else printed


@pytest.mark.parametrize("args, needle", [
    (["--set", "nosuch.key=1"], "nosuch.key"),
    (["--set", "log.levl=debug"], "unknown option 'log.levl' (did you mean log.level?)"),
    (["--set", "tls.cert_file=/nonexistent/cert.pem", "--set", "tls.key_file=/nonexistent/key.pem"],
     "/nonexistent/cert.pem"),
    (["--set", "listen.port=70000"], "listen.port"),
    (["--set", "log.level=loud"], "log.level"),
    (["--set", "limits.max_message_bytes"], "limits.max_message_bytes"),
    (["--port", "notanumber"], "listen.port"),
    (["--bogus"], "--bogus"),
    (["--set"], "--set"),
])
def test_bad_arguments_fail_with_a_named_message(args, needle):
    r = run_echo(*args)
    assert r.returncode != 0, f"{args} was accepted; stdout: {r.stdout!r}"
    assert r.returncode > 0, f"{args}: killed by signal {-r.returncode}; stderr: {r.stderr}"
    assert needle in r.stderr, f"stderr for {args} does not name {needle!r}: {r.stderr!r}"
    assert len(r.stderr.splitlines()) == 1, f"{args}: want one line: {r.stderr!r}"
    assert r.stderr.startswith("wsgate-echo: "), r.stderr
    assert "listening on" not in r.stdout
    assert not any(m in r.stderr for m in SANITIZER_MARKERS), r.stderr


# ---------------------------------------------------------------- stdout contract

def test_prints_exactly_one_listening_line(start_echo):
    t0 = time.monotonic()
    p = start_echo()
    assert time.monotonic() - t0 < 10, "the listening line took more than 10 s"
    # The port in the line is the one actually bound: a client gets through.
    async def body():
        async with connect(p.url) as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
    run(body())
    code, _ = p.signal_and_wait(signal.SIGTERM)
    assert code == 0, p.stderr_text()
    assert len(p.stdout_lines) == 1, f"stdout: {p.stdout_lines}"
    assert LISTEN_RE.match(p.stdout_lines[0])


# ---------------------------------------------------------------- echo and limits

def test_echo_round_trip_text_and_binary(start_echo):
    p = start_echo()

    async def body():
        async with connect(p.url) as ws:
            for msg in ["hello", "", "h\u00e9llo \u2603 \U0001f600", "x" * 5000,
                        b"\x00\x01\x02\xff", b"", bytes(range(256)) * 40]:
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), 5)
                assert type(got) is type(msg), f"sent {type(msg)}, got {type(got)}"
                assert got == msg
            await ws.close()
        assert ws.close_code == 1000
    run(body())


def test_message_over_limit_closes_with_1009(start_echo):
    p = start_echo("--set", "limits.max_message_bytes=100")

    async def body():
        async with connect(p.url) as ws:
            # At the limit: still echoed.
            await ws.send("a" * 100)
            assert await asyncio.wait_for(ws.recv(), 5) == "a" * 100
            await ws.send("b" * 200)
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
            assert info.value.rcvd is not None, f"no close frame from the server: {info.value}"
            assert info.value.rcvd.code == 1009, str(info.value)
        # A new connection still works after the refusal.
        async with connect(p.url) as ws:
            await ws.send(b"z" * 100)
            assert await asyncio.wait_for(ws.recv(), 5) == b"z" * 100
    run(body())
    p.wait_for_event("close", code=1009, cause="too_big")


# ---------------------------------------------------------------- signals

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_gracefully_with_1001(start_echo, sig):
    p = start_echo()
    sent_at = []

    async def body():
        async with connect(p.url) as ws:
            await ws.send("before")
            assert await asyncio.wait_for(ws.recv(), 5) == "before"
            sent_at.append(time.monotonic())
            p.proc.send_signal(sig)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1001, f"close code {ws.close_code}, want 1001"
    run(body())

    remaining = max(0.1, 5.0 - (time.monotonic() - sent_at[0]))
    try:
        code = p.proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"wsgate-echo still running 5 s after {sig.name}; "
                             f"stderr: {p.stderr_text()}") from None
    assert code == 0, f"exit code {code} after {sig.name}; stderr: {p.stderr_text()}"
    p.join_readers()
    p.wait_for_event("close", code=1001, cause="shutdown", timeout=1)
    p.wait_for_event("stop", timeout=1)
    assert len(p.stdout_lines) == 1, f"stdout: {p.stdout_lines}"


def test_signal_with_no_clients(start_echo):
    p = start_echo()

    async def body():
        # One round trip first: the service loop is then surely running (see
        # the race below), and the stop has a closed connection behind it.
        async with connect(p.url) as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 5) == "x"
    run(body())
    p.wait_for_event("close")
    code, elapsed = p.signal_and_wait(signal.SIGINT)
    assert code == 0, p.stderr_text()
    assert elapsed < 5


def test_signal_right_after_the_listening_line(start_echo):
    # A supervisor may stop a service as soon as it reports ready.
    for attempt in range(10):
        p = start_echo("--set", "log.level=error")
        p.proc.send_signal(signal.SIGINT)
        try:
            code = p.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError(f"attempt {attempt}: still running 5 s after SIGINT "
                                 "sent right after the listening line") from None
        assert code == 0, f"attempt {attempt}: exit code {code}; stderr: {p.stderr_text()}"


# ---------------------------------------------------------------- logs

def test_stderr_is_json_events(start_echo):
    p = start_echo()

    async def body():
        async with connect(p.url) as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 5) == "x"
            await ws.close(1000)
    run(body())
    p.wait_for_event("close", code=1000, cause="peer")
    code, _ = p.signal_and_wait(signal.SIGTERM)
    assert code == 0, p.stderr_text()

    events = p.stderr_events()  # fails on any non-JSON line
    assert events, "nothing on stderr"
    for ev in events:
        assert isinstance(ev.get("event"), str) and ev["event"], f"no event name: {ev}"
    names = [ev["event"] for ev in events]
    for name in ("listen", "open", "close"):
        assert name in names, f"no {name!r} event in {names}"
    assert names.index("listen") < names.index("open") < names.index("close")
    listen = events[names.index("listen")]
    assert listen.get("port") == p.port, listen
    opened = events[names.index("open")]
    closed = events[names.index("close")]
    assert opened.get("conn") == closed.get("conn"), (opened, closed)
