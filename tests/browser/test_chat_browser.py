"""The chat demo (examples/chat, wsgate-chat) in headless Chromium.

Starts wsgate-chat on 127.0.0.1 port 0 and runs chat_scenario.js (node,
playwright-core driving Debian's /usr/bin/chromium): two tabs in room A
exchange messages both ways, a third in room B sees none of them, a reload
reconnects, /who lists the room, /msg reaches another room; a fourth tab in
room A loses its connection (closed with 1012 through a playwright WebSocket
route) while messages are sent, reconnects with from= and shows each missed
message exactly once; and when the server stops every tab shows close 1001
"going away". The scenario sends
the server SIGTERM itself; it must then exit 0. A screenshot is saved under
the build folder (tests/chat_browser/chat.png).

Needs what scripts/deps.sh installs: the chromium package and playwright-core
in build/node (ctest passes WSGATE_NODE_MODULES). It installs nothing.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packaging"))
from procutil import die_with_parent  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = "/usr/bin/chromium"
READY_RE = re.compile(r"^open http://127\.0\.0\.1:(\d+)/ in a browser$")
SCENARIO_TIMEOUT = 150  # s; the script's own watchdog fires at 120 s
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")

def _need(what, ok, fix):
    if not ok:
        pytest.fail(f"{what}: {fix}")


@pytest.fixture
def chat_server():
    binary = os.environ.get("WSGATE_CHAT", "")
    _need(f"WSGATE_CHAT={binary!r} is not an executable", os.access(binary, os.X_OK),
          "run through ctest, or export WSGATE_CHAT=BUILD/examples/wsgate-chat")
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=die_with_parent)
    # stderr (JSON log lines) is read all along, so the pipe never fills.
    proc.stderr_lines = []
    reader = threading.Thread(target=lambda: proc.stderr_lines.extend(proc.stderr), daemon=True)
    reader.start()
    proc.stderr_text = lambda: (reader.join(10), "".join(proc.stderr_lines))[1]
    try:
        line = proc.stdout.readline().rstrip("\n")
        m = READY_RE.match(line)
        if not m:
            proc.kill()
            pytest.fail(f"wsgate-chat printed {line!r}, not 'open http://127.0.0.1:PORT/ in a browser'; "
                        f"stderr: {proc.stderr_text()}")
        yield proc, int(m.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_chat_in_chromium(chat_server, tmp_path):
    proc, port = chat_server
    modules = os.environ.get("WSGATE_NODE_MODULES", "")
    _need(f"playwright-core is not in WSGATE_NODE_MODULES={modules!r}",
          os.path.isfile(os.path.join(modules, "playwright-core", "package.json")),
          "run scripts/deps.sh (it runs npm ci in build/node)")
    _need(f"{CHROMIUM} is missing", os.access(CHROMIUM, os.X_OK), "run scripts/deps.sh (apt package chromium)")
    node = shutil.which("node")
    _need("node is not on PATH", node, "install Debian's nodejs (scripts/deps.sh)")

    shot = os.path.join(os.getcwd(), "chat_browser", "chat.png")
    if os.path.exists(shot):
        os.remove(shot)
    env = dict(os.environ, NODE_PATH=modules, TMPDIR=str(tmp_path))
    t0 = time.monotonic()
    try:
        run = subprocess.run([node, os.path.join(HERE, "chat_scenario.js"), f"http://127.0.0.1:{port}/",
                              shot, str(proc.pid)], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=SCENARIO_TIMEOUT, env=env, preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the browser scenario ran past {SCENARIO_TIMEOUT} s; output: {e.stdout} {e.stderr}")
    print(run.stdout)
    print(run.stderr)
    assert run.returncode == 0, f"browser scenario failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    print(f"scenario took {time.monotonic() - t0:.1f} s")

    # The scenario stopped the server with SIGTERM: a graceful exit, clean.
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("wsgate-chat still runs 10 s after SIGTERM")
    err = proc.stderr_text()
    assert code == 0, f"wsgate-chat exited {code}; stderr:\n{err}"
    for marker in SANITIZER_MARKERS:
        assert marker not in err, f"sanitizer report from wsgate-chat:\n{err}"
    assert '"event":"stop"' in err

    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{shot} is not a PNG"
