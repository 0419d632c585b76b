"""Runs wsgate-echo for the tests (test_echo_example.py, test_interop.py).

The binary comes from the environment variable WSGATE_ECHO (ctest sets it).
Every process started here is bounded in time and killed at teardown; it also
gets PR_SET_PDEATHSIG, so it dies with pytest even if pytest itself is killed
(for example by the ctest TIMEOUT).
"""

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

from procutil import die_with_parent

LISTEN_RE = re.compile(r"^listening on ws://127\.0\.0\.1:(\d+)/$")
START_TIMEOUT = 15.0  # generous for sanitizer builds on a loaded machine
STOP_TIMEOUT = 5.0
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")

def echo_binary():
    path = os.environ.get("WSGATE_ECHO")
    if not path:
        pytest.fail("WSGATE_ECHO is not set: run through ctest, or export "
                    "WSGATE_ECHO=/path/to/build/examples/wsgate-echo")
    if not os.access(path, os.X_OK):
        pytest.fail(f"WSGATE_ECHO={path} is not an executable file")
    return path


def run_echo(*args, timeout=15.0):
    """Runs wsgate-echo to completion (for --help and argument errors)."""
    return subprocess.run([echo_binary(), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=die_with_parent)


class EchoProcess:
    """A running wsgate-echo with its stdout and stderr read by threads."""

    def __init__(self, *args, binary=None):
        # binary: another program with wsgate-echo's command line (wsgate-chat).
        self.args = [binary or echo_binary(), "--host", "127.0.0.1", "--port", "0", *args]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, preexec_fn=die_with_parent)
        self.stdout_lines = []
        self.stderr_lines = []
        self._stdout_q = queue.Queue()
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout_lines,
                                                      self._stdout_q), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines,
                                                      None), daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.port = None
        self.url = None

    def _pump(self, stream, lines, q):
        for line in stream:
            line = line.rstrip("\n")
            with self._lock:
                lines.append(line)
            if q is not None:
                q.put(line)
        if q is not None:
            q.put(None)  # EOF

    def wait_listening(self, timeout=START_TIMEOUT):
        """Waits for the one 'listening on' line; returns the port."""
        try:
            line = self._stdout_q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no 'listening on' line within {timeout} s; "
                                 f"stderr: {self.stderr_text()}") from None
        if line is None:
            self.proc.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(f"wsgate-echo exited ({self.proc.returncode}) before "
                                 f"listening; stderr: {self.stderr_text()}")
        m = LISTEN_RE.match(line)
        assert m, f"unexpected first stdout line {line!r}"
        self.port = int(m.group(1))
        assert 0 < self.port < 65536
        self.url = f"ws://127.0.0.1:{self.port}/"
        return self.port

    def stderr_text(self):
        with self._lock:
            return "\n".join(self.stderr_lines)

    def stderr_events(self):
        """stderr parsed as JSON lines; fails on any line that is not a JSON object."""
        events = []
        with self._lock:
            lines = list(self.stderr_lines)
        for line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise AssertionError(f"stderr line is not JSON: {line!r}") from None
            assert isinstance(obj, dict), f"stderr line is not a JSON object: {line!r}"
            events.append(obj)
        return events

    def wait_for_event(self, name, timeout=5.0, **fields):
        """Waits until stderr has a JSON event `name` with the given fields."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.stderr_events():
                if ev.get("event") == name and all(ev.get(k) == v for k, v in fields.items()):
                    return ev
            if time.monotonic() > deadline:
                raise AssertionError(f"no {name} event with {fields} within {timeout} s; "
                                     f"stderr: {self.stderr_text()}")
            time.sleep(0.02)

    def signal_and_wait(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends `sig` and waits for the exit; returns (exit code, seconds taken)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"wsgate-echo still running {timeout} s after signal {sig}; "
                                 f"stderr: {self.stderr_text()}") from None
        elapsed = time.monotonic() - t0
        self.join_readers()
        return code, elapsed

    def join_readers(self, timeout=STOP_TIMEOUT):
        for t in self._readers:
            t.join(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self.join_readers()
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def assert_no_sanitizer_reports(self):
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, f"sanitizer report in wsgate-echo stderr:\n{text}"


CHAT_READY_RE = re.compile(r"^open http://127\.0\.0\.1:(\d+)/ in a browser$")


def chat_binary():
    path = os.environ.get("WSGATE_CHAT", "")
    if not os.access(path, os.X_OK):
        pytest.fail(f"WSGATE_CHAT={path!r} is not an executable: run through ctest")
    return path


class ChatProcess(EchoProcess):
    """wsgate-chat (from WSGATE_CHAT), with EchoProcess's process handling
    and its own ready line."""

    def __init__(self, *args):
        super().__init__(*args, binary=chat_binary())

    def wait_listening(self, timeout=15.0):
        line = self._stdout_q.get(timeout=timeout)
        m = CHAT_READY_RE.match(line or "")
        assert m, f"unexpected ready line {line!r}; stderr: {self.stderr_text()}"
        self.port = int(m.group(1))
        return self.port


def stop_echo_processes(procs, died_is_failure=False):
    """Fixture teardown: each server still running gets SIGTERM and must exit
    0 within STOP_TIMEOUT with no sanitizer report; with died_is_failure, one
    that already exited must have exited 0. Anything left is killed; the
    problems fail the test together."""
    problems = []
    for p in procs:
        try:
            if p.proc.poll() is None:
                code, _ = p.signal_and_wait(signal.SIGTERM)
                if code != 0:
                    problems.append(f"wsgate-echo exited {code} on SIGTERM; "
                                    f"stderr: {p.stderr_text()}")
            elif died_is_failure and p.proc.returncode != 0:
                problems.append(f"wsgate-echo died during the test ({p.proc.returncode}); "
                                f"stderr: {p.stderr_text()}")
            p.join_readers()
            p.assert_no_sanitizer_reports()
        except AssertionError as e:
            problems.append(str(e))
        finally:
            p.kill()
    if problems:
        pytest.fail("\n".join(problems))
