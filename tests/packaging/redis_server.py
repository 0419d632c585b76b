"""A real redis-server for tests and benchmarks, and a tiny RESP client.

One copy for every Python user of Redis in the tree (tests/cluster/*.py,
python/tests, bench/cluster/run.py): they add this directory to sys.path.
The server runs on a free 127.0.0.1 port in its own temporary directory with
persistence off, and is stopped by its pid; `pause`/`resume` (SIGSTOP and
SIGCONT), `kill` and `restart` (same port, empty data) serve fault tests.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from procutil import die_with_parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp_read(f):
    """One RESP2 reply from a binary file object: str, int, None, list; errors as str."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode(errors="surrogateescape")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise ConnectionError(f"not RESP: {line!r}")


def redis_command(port, *words, timeout=2.0, host="127.0.0.1"):
    """Sends one command on a new connection and returns its decoded reply."""
    parts = [w if isinstance(w, bytes) else str(w).encode() for w in words]
    req = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(req)
        with s.makefile("rb") as f:
            return resp_read(f)


class RedisServer:
    """redis-server on a free loopback port. Use as a context manager or call
    start()/stop(). `address` is what cluster.redis takes."""

    def __init__(self, extra_args=(), tie_to_parent=True):
        self.exe = shutil.which("redis-server") or "/usr/sbin/redis-server"
        if not os.path.exists(self.exe):
            raise RuntimeError("redis-server not found (scripts/deps.sh installs it)")
        self.extra_args = list(extra_args)
        self.tie_to_parent = tie_to_parent
        self.tmp = tempfile.mkdtemp(prefix="wsgate-redis-")
        self.port = free_port()
        self.proc = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def argv(self):
        return [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.tmp,
                "--logfile", os.path.join(self.tmp, "redis.log")] + self.extra_args

    def start(self, timeout=10.0):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent if self.tie_to_parent else None)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.command("PING", timeout=0.5) == "PONG":
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start; its log: " + self.log())
            time.sleep(0.02)

    def command(self, *words, timeout=2.0):
        return redis_command(self.port, *words, timeout=timeout)

    def log(self):
        try:
            with open(os.path.join(self.tmp, "redis.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "(none)"

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """kill -9: the data is gone (persistence is off)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)

    def restart(self):
        self.kill()
        return self.start()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
