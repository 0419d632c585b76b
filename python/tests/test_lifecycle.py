"""Lifecycle in every order a Python user might try: stop during traffic,
garbage collection of a running server (also from its own callback),
interpreter exit while running, Ctrl-C and SIGTERM in serve_forever,
request_stop, `python -m wsgate`."""

import asyncio
import gc
import os
import re
import signal
import textwrap
import threading
import time
import weakref

import pytest
from websockets.exceptions import ConnectionClosed

import wsgate
from conftest import connect, recv, run, url_of, wait_until


def test_stop_during_traffic(make_server):
    server = make_server()
    closes = []
    lock = threading.Lock()

    @server.on_message
    def echo(conn, message):
        conn.send(message)

    @server.on_close
    def closed(conn, code, reason):
        with lock:
            closes.append((conn.id, code, conn.close_cause))

    server.start()
    n = 8
    received = [0] * n
    codes = [None] * n

    async def client(i, started):
        async with connect(url_of(server)) as ws:
            started.set()
            try:
                while True:
                    for _ in range(20):
                        await ws.send(f"{i} " + "x" * 100)
                    for _ in range(20):
                        await recv(ws)
                        received[i] += 1
            except ConnectionClosed as e:
                codes[i] = e.code

    async def body():
        events = [asyncio.Event() for _ in range(n)]
        tasks = [asyncio.create_task(client(i, events[i])) for i in range(n)]
        await asyncio.gather(*(e.wait() for e in events))
        await asyncio.sleep(0.3)  # traffic flows
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, server.stop)  # blocks: run it off the loop
        await asyncio.wait_for(asyncio.gather(*tasks), 15)

    run(body())
    assert not server.running
    assert all(r > 0 for r in received)
    assert codes == [1001] * n
    assert len(closes) == n and len({c[0] for c in closes}) == n  # exactly once each
    assert all(code == 1001 and cause == "shutdown" for _, code, cause in closes)


def test_running_server_garbage_collected():
    # The collection below runs on the client's loop thread, so the client
    # cannot answer the close frame until it is done: keep the wait short.
    server = wsgate.Server(host="127.0.0.1", port=0, shutdown_timeout_ms=300)
    server.on_message(lambda conn, m: conn.send(m))
    # A cycle through a closure: only the garbage collector can free it.
    holder = {"server": server}
    server.on_close(lambda conn, code, reason: holder)
    holder["self"] = holder
    server.start()
    port = server.port
    ref = weakref.ref(server)

    async def body():
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("x")
            assert await recv(ws) == "x"
            nonlocal server, holder
            del server, holder
            gc.collect()
            assert ref() is None
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.code == 1001
    run(body())

    # The port is free again.
    again = wsgate.Server(host="127.0.0.1", port=port)
    again.start()
    again.stop()


def test_server_dropped_inside_its_own_callback():
    """The last reference goes away on the service thread, which cannot join
    itself: a helper thread frees the server."""
    holder = [wsgate.Server(host="127.0.0.1", port=0)]
    server = holder[0]
    ref = weakref.ref(server)

    @server.on_message
    def handle(conn, message):
        conn.send("dropping")
        holder.clear()  # the dispatcher's reference is the last one now

    server.start()
    port = server.port
    del server

    async def body():
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("x")
            assert await recv(ws) == "dropping"
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.code == 1001
    run(body())
    wait_until(lambda: ref() is None)


def test_unstarted_and_listening_servers_are_freed():
    s = wsgate.Server(port=0, host="127.0.0.1")
    ref = weakref.ref(s)
    del s
    assert ref() is None
    s = wsgate.Server(port=0, host="127.0.0.1")
    s.listen()
    port = s.port
    del s
    s = wsgate.Server(port=port, host="127.0.0.1")  # the port was released
    s.listen()
    s.stop()


def test_concurrent_stops(make_server):
    server = make_server()
    server.start()
    errors = []

    def stopper():
        try:
            server.stop()
        except Exception as e:  # pragma: no cover - would fail the test
            errors.append(e)

    threads = [threading.Thread(target=stopper) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors and not server.running


def test_interpreter_exit_while_running(child):
    """The script ends with the server running and a client connected: the
    atexit hook stops it (client gets 1001) and the process exits 0."""
    proc = child(textwrap.dedent("""
        import time, wsgate
        server = wsgate.Server(host="127.0.0.1", port=0)
        opened = []
        server.on_open(opened.append)
        server.on_message(lambda conn, m: conn.send(m))
        server.on_close(lambda conn, code, reason: print("closed", code, flush=True))
        server.start()
        print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
        deadline = time.monotonic() + 20
        while not opened and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        print("exiting", flush=True)
    """))
    port = proc.port()

    async def body():
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("x")
            assert await recv(ws) == "x"
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, timeout=20)
            assert info.value.code == 1001
    run(body())
    assert proc.wait() == 0, proc.err()
    assert "closed 1001" in proc.out()
    assert "Traceback" not in proc.err() and "Fatal" not in proc.err()


def test_interpreter_exit_during_a_slow_callback(child):
    """The main thread exits while a handler is still running on the service
    thread; the handler finishes, later events do not enter Python."""
    proc = child(textwrap.dedent("""
        import sys, time, wsgate
        server = wsgate.Server(host="127.0.0.1", port=0)
        busy = []
        def handle(conn, message):
            busy.append(1)
            time.sleep(0.5)
            conn.send("late")
        server.on_message(handle)
        server.start()
        print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
        deadline = time.monotonic() + 20
        while not busy and time.monotonic() < deadline:
            time.sleep(0.005)
        sys.exit(0)
    """))
    port = proc.port()

    async def body():
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            for _ in range(5):
                await ws.send("x")
            try:
                while True:
                    await recv(ws, timeout=20)
            except ConnectionClosed:
                pass
    run(body())
    assert proc.wait() == 0, proc.err()
    assert "Fatal" not in proc.err()


def test_interpreter_exit_with_a_garbage_server_in_a_cycle(child):
    """A running server only reachable through a cycle at exit."""
    proc = child(textwrap.dedent("""
        import wsgate
        class App:
            def __init__(self):
                self.server = wsgate.Server(host="127.0.0.1", port=0)
                self.server.on_message(self.handle)
            def handle(self, conn, message):
                conn.send(message)
        app = App()
        app.server.start()
        print(f"listening on ws://127.0.0.1:{app.server.port}/", flush=True)
        del app
    """))
    proc.port()
    assert proc.wait() == 0, proc.err()


SERVE_FOREVER = textwrap.dedent("""
    import wsgate
    server = wsgate.Server(host="127.0.0.1", port=0)
    @server.on_message
    def echo(conn, message):
        conn.send(message)
    @server.on_close
    def closed(conn, code, reason):
        print("closed", code, conn.close_cause, flush=True)
    with server:
        print(f"listening on ws://127.0.0.1:{server.port}/", flush=True)
        server.serve_forever()
    print("returned", server.running, flush=True)
    print("sigterm default", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_in_serve_forever(child, sig):
    """Ctrl-C and a plain `kill` both stop gracefully: the client gets 1001,
    serve_forever returns, the process exits 0 and SIGTERM is left as it was."""
    proc = child("import signal\n" + SERVE_FOREVER)
    port = proc.port()

    async def body():
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("x")
            assert await recv(ws) == "x"
            proc.signal_when_caught(sig)
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, timeout=20)
            assert info.value.code == 1001
    run(body())
    assert proc.wait() == 0, proc.err()
    assert "closed 1001 shutdown" in proc.out()
    assert "returned False" in proc.out()
    assert "sigterm default True" in proc.out()
    assert "Traceback" not in proc.err()


def test_serve_forever_handles_sigterm_only_when_nobody_else_does(make_server):
    """In this (main) thread: while serve_forever waits, SIGTERM has its
    handler if it was SIG_DFL, and is SIG_DFL again afterwards; an
    application's own handler stays in place and is the one called."""
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    server = make_server()
    seen = []

    def kill_when_handled():
        # Never send SIGTERM while nobody handles it: that would end pytest.
        wait_until(lambda: signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, timeout=10)
        seen.append(signal.getsignal(signal.SIGTERM))
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=kill_when_handled)
    t.start()
    server.serve_forever(poll_interval=0.05)
    t.join(timeout=10)
    assert not server.running
    assert seen and seen[0] is not signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    calls = []

    def mine(signum, frame):
        calls.append(signum)
        server.request_stop()

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        t = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
        t.start()
        server.serve_forever(poll_interval=0.05)  # ends through mine's request_stop
        t.join()
        assert calls == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is mine
        assert not server.running
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_request_stop_from_another_thread_ends_serve_forever(make_server):
    server = make_server()
    closes = []
    server.on_message(lambda conn, message: conn.send(message))
    server.on_close(lambda conn, code, reason: closes.append((code, conn.close_cause)))
    server.start()
    url = url_of(server)

    async def body():
        async with connect(url) as ws:
            await ws.send("x")
            assert await recv(ws) == "x"
            timer = threading.Timer(0.2, server.request_stop)
            timer.start()
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, timeout=20)
            assert info.value.code == 1001
            timer.join()

    done = threading.Event()

    def serve():
        server.serve_forever(poll_interval=0.05)
        done.set()

    t = threading.Thread(target=serve)
    t.start()
    run(body())
    t.join(timeout=20)
    assert done.is_set()
    assert not server.running
    assert closes == [(1001, "shutdown")]
    # The request was used up: a restart serves until stopped.
    server.start()

    async def echo():
        await asyncio.sleep(0.3)  # a few ticks: a kept request would have stopped it
        async with connect(url_of(server)) as ws:
            await ws.send("again")
            assert await recv(ws) == "again"
    run(echo())
    server.stop()


def test_request_stop_outside_a_run_is_harmless(make_server):
    never = make_server()
    never.request_stop()  # never started: nothing happens
    never.request_stop()
    stopped = make_server()
    stopped.start()
    stopped.stop()
    stopped.request_stop()  # stopped: nothing happens now...
    assert not stopped.running
    # ...and the next start stops at once (a signal that came early is kept).
    stopped.start()
    wait_until(lambda: not stopped._core.listening, timeout=5)
    stopped.stop()
    assert not stopped.running


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_python_m_wsgate(child, sig):
    proc = child(["-m", "wsgate", "--host", "127.0.0.1", "--port", "0",
                  "--set", "server.shutdown_timeout_ms=1000"])
    port = proc.port()

    async def body():
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("echo me")
            assert await recv(ws) == "echo me"
            await ws.send(b"\x00bin")
            assert await recv(ws) == b"\x00bin"
            proc.signal(sig)
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, timeout=20)
            assert info.value.code == 1001
    run(body())
    assert proc.wait() == 0, proc.err()
    assert '"event":"open"' in proc.err() and '"event":"close"' in proc.err()


def test_python_m_wsgate_broadcast(child):
    proc = child(["-m", "wsgate", "--host", "127.0.0.1", "--port", "0", "--broadcast", "--quiet"])
    port = proc.port()

    async def body():
        async with connect(f"ws://127.0.0.1:{port}/") as a, connect(f"ws://127.0.0.1:{port}/") as b:
            await asyncio.sleep(0.2)
            await a.send("to all")
            assert await recv(a) == "to all" and await recv(b) == "to all"
    run(body())
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.err()
    assert proc.err() == ""  # --quiet


def test_python_m_wsgate_bad_option_and_list(child):
    proc = child(["-m", "wsgate", "--set", "no.such=1"])
    assert proc.wait() == 2
    assert "unknown option 'no.such'" in proc.err()
    proc = child(["-m", "wsgate", "--set", "log.levl=debug"])
    assert proc.wait() == 2
    assert proc.err() == "python -m wsgate: unknown option 'log.levl' (did you mean log.level?)\n"


def test_python_m_wsgate_list_options_gives_every_field(child):
    proc = child(["-m", "wsgate", "--list-options"])
    assert proc.wait() == 0, proc.err()
    entries = re.findall(r'^  (\S+) +(\S+) +default "(.*?)"(?:, range (\S+))?\n      (.*)$',
                         proc.out(), re.MULTILINE)
    listed = {name: (typ, default, rng, doc) for name, typ, default, rng, doc in entries}
    expected = {o.name: (o.type, o.default, o.range, o.doc) for o in wsgate.options()}
    assert len(expected) > 40
    assert listed == expected
    assert len(proc.out().splitlines()) == 2 * len(expected)  # nothing else printed


@pytest.mark.parametrize("bad", [
    ["--set", "tls.cert_file=/nonexistent/cert.pem", "--set", "tls.key_file=/nonexistent/key.pem"],
    ["--set", "tls.cert_file=/nonexistent/cert.pem"],  # no key: inconsistent options
])
def test_python_m_wsgate_bad_certificate_is_one_line(child, bad):
    proc = child(["-m", "wsgate", "--host", "127.0.0.1", "--port", "0", *bad])
    code = proc.wait()
    assert code != 0 and code > 0, (code, proc.err())
    assert "Traceback" not in proc.err(), proc.err()
    lines = proc.err().splitlines()
    assert len(lines) == 1, proc.err()
    assert lines[0].startswith("python -m wsgate: ") and "tls." in lines[0], lines[0]
    assert "listening on" not in proc.out()


def test_python_m_wsgate_repeated_signals_still_exit_0(child):
    proc = child(["-m", "wsgate", "--host", "127.0.0.1", "--port", "0", "--quiet"])
    port = proc.port()

    async def body():
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("x")
            assert await recv(ws) == "x"
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
                proc.signal(sig)
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, timeout=20)
            assert info.value.code == 1001
    run(body())
    assert proc.wait() == 0, proc.err()
    assert "Traceback" not in proc.err()


def test_sending_threads_while_the_server_stops(make_server):
    """Python threads keep sending and broadcasting while another stops the
    server: they see wsgate errors, never a crash or a hang."""
    server = make_server()
    opened = []
    server.on_open(opened.append)
    server.start()
    stop = threading.Event()
    outcomes = []

    def sender(conn):
        errors = set()
        while not stop.is_set():
            try:
                conn.send("x" * 64)
                server.broadcast(b"y" * 64)
                time.sleep(0.0005)  # keeps the client (one Python loop) able to follow
            except wsgate.WsgateError as e:
                errors.add(type(e).__name__)
                if isinstance(e, wsgate.StateError):
                    break
        outcomes.append(errors)

    async def drain(ws):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as e:
            return e.code

    async def body():
        async with connect(url_of(server)) as ws:
            reader = asyncio.create_task(drain(ws))
            wait_until(lambda: opened)
            workers = [threading.Thread(target=sender, args=(opened[0],)) for _ in range(3)]
            for w in workers:
                w.start()
            await asyncio.sleep(0.2)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, server.stop)
            stop.set()
            for w in workers:
                await loop.run_in_executor(None, w.join, 10)
            assert not any(w.is_alive() for w in workers)
            assert await asyncio.wait_for(reader, 10) == 1001
    run(body())
    assert len(outcomes) == 3
    for errors in outcomes:
        assert errors <= {"NotFoundError", "ClosedError", "StateError"}, errors


def test_message_too_big_closes_with_1009(make_server):
    server = make_server(options={"limits.max_message_bytes": 1000})
    closes = []
    server.on_message(lambda conn, m: conn.send(m))
    server.on_close(lambda conn, code, reason: closes.append((code, conn.close_cause)))
    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            await ws.send("x" * 1000)
            assert await recv(ws) == "x" * 1000
            await ws.send("x" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.code == 1009
    run(body())
    wait_until(lambda: closes)
    assert closes == [(1009, "too_big")]


def test_drain_closes_with_1012_over_the_duration(make_server):
    """server.drain(seconds): draining at once, new upgrades 503, clients
    closed with 1012 (cause "drain") spread over the duration, then stopped."""
    server = make_server()
    closes = []
    lock = threading.Lock()

    @server.on_close
    def closed(conn, code, reason):
        with lock:
            closes.append((time.monotonic(), code, conn.close_cause))

    server.start()
    port = server.port
    n = 10

    async def body():
        socks = [await connect(url_of(server)) for _ in range(n)]
        assert not server.draining
        t0 = time.monotonic()
        drainer = threading.Thread(target=server.drain, args=(1.0,))
        drainer.start()
        wait_until(lambda: server.draining, 2)
        with pytest.raises(Exception) as refused:
            await connect(f"ws://127.0.0.1:{port}/")
        assert "503" in str(refused.value)
        for ws in socks:
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, timeout=10)
            assert info.value.code == 1012
        await asyncio.get_running_loop().run_in_executor(None, drainer.join)
        return t0

    t0 = run(body())
    assert not server.running
    with lock:
        assert len(closes) == n
        assert all(code == 1012 and cause == "drain" for _, code, cause in closes)
        times = sorted(t - t0 for t, _, _ in closes)
    # Spread over the second, not all at once.
    assert times[-1] - times[0] >= 0.5, times


@pytest.mark.parametrize("seconds", [-1, -0.001, 3600.001, 1e12])
def test_drain_refuses_a_duration_out_of_range(make_server, seconds):
    """drain() outside 0..3600 s: InvalidArgumentError naming the range, and
    the server goes on serving (not draining, still running)."""
    server = make_server()
    server.start()
    with pytest.raises(wsgate.InvalidArgumentError) as info:
        server.drain(seconds)
    assert "3600000" in str(info.value) or "range" in str(info.value), info.value
    assert server.running and not server.draining

    async def body():
        async with connect(url_of(server)) as ws:  # a new upgrade is served
            await asyncio.wait_for(await ws.ping(), 5)
    run(body())
