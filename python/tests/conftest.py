"""Shared helpers for the binding's tests: real servers on 127.0.0.1 port 0,
real clients from `websockets` (Debian's 10.x), every wait bounded."""

import asyncio
import os
import subprocess
import sys
import time

import pytest
import websockets

import wsgate

TIMEOUT = 30.0
HERE = os.path.dirname(os.path.abspath(__file__))


def run(coro, timeout=TIMEOUT):
    """Runs one async test body with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(url, **kw):
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", 16 * 1024 * 1024)
    kw.setdefault("compression", None)
    return websockets.connect(url, **kw)


async def recv(ws, timeout=10):
    return await asyncio.wait_for(ws.recv(), timeout)


def url_of(server, path="/"):
    return f"ws://127.0.0.1:{server.port}{path}"


def wait_until(predicate, timeout=10.0, interval=0.01):
    """Polls predicate() until true; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def make_server():
    """Factory: make_server(**kwargs) -> a wsgate.Server on 127.0.0.1:0,
    not started; stopped at teardown."""
    servers = []

    def make(**kwargs):
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
        options = dict(kwargs.pop("options", {}) or {})
        options.setdefault("server.shutdown_timeout_ms", 1000)
        s = wsgate.Server(options=options, **kwargs)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def python_env():
    """Environment for child Pythons: unbuffered, same import path."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Child:
    """A child of this interpreter (the venv's python) with stdout and stderr
    collected by reader threads. A str is run with -c, a list as arguments."""

    def __init__(self, code_or_args, cwd=None):
        import queue
        import threading

        args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=python_env(),
                                     cwd=cwd)
        self.lines = queue.Queue()
        self.stdout = []
        self.stderr = []

        def pump(stream, sink, q):
            for line in stream:
                sink.append(line)
                if q is not None:
                    q.put(line)
            if q is not None:
                q.put(None)

        self._threads = [
            threading.Thread(target=pump, args=(self.proc.stdout, self.stdout, self.lines), daemon=True),
            threading.Thread(target=pump, args=(self.proc.stderr, self.stderr, None), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def wait_line(self, prefix, timeout=20.0):
        """Returns the first stdout line starting with prefix."""
        import queue

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = None
            if line is not None and line.startswith(prefix):
                return line
            if line is None or left <= 0:
                self.kill()
                raise AssertionError(f"no line starting with {prefix!r}; stdout={self.out()!r} "
                                     f"stderr={self.err()!r}")

    def port(self, timeout=20.0):
        """Waits for 'listening on ws://HOST:PORT/...' and returns PORT."""
        line = self.wait_line("listening on ws://", timeout)
        hostport = line.split("ws://", 1)[1].split("/", 1)[0]
        return int(hostport.rsplit(":", 1)[1])

    def wait(self, timeout=30.0):
        """Waits for the exit; returns the exit code (kills on timeout and fails)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"child did not exit within {timeout}s; stdout={self.out()!r} "
                                 f"stderr={self.err()!r}")
        for t in self._threads:
            t.join(timeout=5)
        return code

    def signal(self, sig):
        self.proc.send_signal(sig)

    def catches(self, sig):
        """True when the child has a handler for sig (Linux: SigCgt in
        /proc/PID/status)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) >> (int(sig) - 1) & 1)
        except OSError:
            pass
        return False

    def signal_when_caught(self, sig, timeout=10.0):
        """Sends sig once the child handles it: serve_forever installs its
        SIGTERM handler only when called, a moment after the child printed
        its listening line. (Python catches SIGINT from the start.)"""
        wait_until(lambda: self.catches(sig) or self.proc.poll() is not None, timeout)
        assert self.catches(sig), f"child does not handle signal {sig}; stderr={self.err()!r}"
        self.signal(sig)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def out(self):
        return "".join(self.stdout)

    def err(self):
        return "".join(self.stderr)


@pytest.fixture
def child():
    """Factory: child(code_or_args) -> Child; killed at teardown if still running."""
    children = []

    def make(code_or_args, **kw):
        c = Child(code_or_args, **kw)
        children.append(c)
        return c

    yield make
    for c in children:
        c.kill()
