"""TLS (wss) end to end: real certificates generated here with the openssl
CLI, wsgate-echo as the server, Python's ssl + websockets and openssl
s_client as clients. Every wait is bounded; servers are stopped in finally."""
import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time

import pytest
import websockets

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")

ECHO = os.environ.get("WSGATE_ECHO", "")
pytestmark = pytest.mark.skipif(not ECHO, reason="WSGATE_ECHO not set")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="wsg-tls-")
    try:
        def ca(name):
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                    "-subj", f"/CN={name}", cwd=d)

        def leaf(name, ca_name, subj, ext):
            openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
            with open(os.path.join(d, f"{name}.ext"), "w") as f:
                f.write(ext)
            openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca_name}.pem", "-CAkey",
                    f"{ca_name}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                    "-extfile", f"{name}.ext", cwd=d)

        ca("ca")
        ca("rogue")
        server_ext = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        leaf("server", "ca", "/CN=wsgate test server", server_ext)
        leaf("server2", "ca", "/CN=wsgate reloaded server", server_ext)
        leaf("client", "ca", "/CN=alice/O=wsgate tests", "extendedKeyUsage=clientAuth\n")
        leaf("intruder", "rogue", "/CN=mallory", "extendedKeyUsage=clientAuth\n")
        with open(os.path.join(d, "garbage.pem"), "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Echo:
    def __init__(self, *sets):
        args = [ECHO, "--host", "127.0.0.1", "--port", "0"]
        for s in sets:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err = None  # everything it logged, once stopped
        line = self.proc.stdout.readline()
        m = re.match(r"listening on wss://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.stop(check=False)
            raise AssertionError(f"no listen line: {line!r} {self.proc.stderr.read()}")
        self.port = int(m.group(1))

    def stop(self, check=True):
        """SIGTERM; with check, the server must exit 0 with no sanitizer report
        (the ASan and ThreadSanitizer builds run this suite too)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.err is None:
            self.err = self.proc.stderr.read()
        if check:
            assert self.proc.returncode == 0, f"wsgate-echo exited {self.proc.returncode}:\n{self.err}"
            for marker in SANITIZER_MARKERS:
                assert marker not in self.err, f"sanitizer report from wsgate-echo:\n{self.err}"
        return self.err

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # A test that failed already keeps its own message.
        self.stop(check=exc_type is None)


def server_sets(pki, cert="server", *extra):
    return (f"tls.cert_file={pki}/{cert}.pem", f"tls.key_file={pki}/{cert}.key") + extra


def client_ctx(pki, cert=None):
    ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
    if cert:
        ctx.load_cert_chain(f"{pki}/{cert}.pem", f"{pki}/{cert}.key")
    return ctx


async def echo_once(port, ctx, text="hello over tls"):
    async with websockets.connect(f"wss://127.0.0.1:{port}/", ssl=ctx, open_timeout=5,
                                  close_timeout=2) as ws:
        await ws.send(text)
        return await asyncio.wait_for(ws.recv(), 5)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def s_client(port, *args):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       input="", capture_output=True, text=True, timeout=20)
    return r.returncode, r.stdout + r.stderr


def test_wss_echo_and_alpn(pki):
    with Echo(*server_sets(pki)) as e:
        assert run(echo_once(e.port, client_ctx(pki))) == "hello over tls"
        code, out = s_client(e.port, "-alpn", "h2,http/1.1", "-CAfile", f"{pki}/ca.pem")
        assert "ALPN protocol: http/1.1" in out  # never h2: raw frame writes need HTTP/1.1


def test_wss_with_permessage_deflate(pki):
    """Compressed frames (RSV1) go through TLS like any raw write: small and
    compressible, large enough to be fragmented, incompressible, both ways."""
    big = "".join(f"line {i}: the quick brown fox\n" for i in range(20000))  # ~600 KB
    noise = os.urandom(4096)

    async def body(port):
        async with websockets.connect(f"wss://127.0.0.1:{port}/", ssl=client_ctx(pki),
                                      open_timeout=5, close_timeout=2, max_size=None) as ws:
            assert [x.name for x in ws.extensions] == ["permessage-deflate"]
            for message in ("hi", "hello " * 100, big, noise):
                await ws.send(message)
                assert await asyncio.wait_for(ws.recv(), 10) == message

    with Echo(*server_sets(pki, "server", "compression.enabled=true")) as e:
        run(body(e.port))


@pytest.mark.parametrize("flag,ok", [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True),
                                     ("-tls1_3", True)])
def test_protocol_versions(pki, flag, ok):
    with Echo(*server_sets(pki)) as e:
        code, out = s_client(e.port, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
        assert (("Protocol  :" in out or "New, TLSv1" in out) and code == 0) == ok, out


def test_min_version_1_3(pki):
    with Echo(*server_sets(pki, "server", "tls.min_version=1.3")) as e:
        code, out = s_client(e.port, "-tls1_2")
        assert code != 0
        code, out = s_client(e.port, "-tls1_3")
        assert code == 0 and "TLSv1.3" in out


def test_tls12_suites_are_forward_secret_aead(pki):
    with Echo(*server_sets(pki)) as e:
        code, out = s_client(e.port, "-tls1_2", "-cipher", "AES128-SHA256")  # RSA kx, CBC
        assert code != 0
        code, out = s_client(e.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert code == 0, out


@pytest.mark.parametrize("group,ok", [("X25519", True), ("P-256", True), ("P-384", True),
                                      ("ffdhe2048", False)])
def test_key_exchange_groups(pki, group, ok):
    with Echo(*server_sets(pki)) as e:
        code, out = s_client(e.port, "-groups", group)
        assert (code == 0) == ok, out


def test_plain_http_on_tls_port_is_dropped(pki):
    import socket
    with Echo(*server_sets(pki)) as e:
        s = socket.create_connection(("127.0.0.1", e.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(100)
        except (ConnectionResetError, socket.timeout):
            data = b""
        assert not data.startswith(b"HTTP/1.1 101")
        s.close()
        assert run(echo_once(e.port, client_ctx(pki))) == "hello over tls"  # still serving


@pytest.mark.parametrize("sets,needle", [
    (("tls.cert_file={d}/missing.pem", "tls.key_file={d}/server.key"), "missing.pem"),
    (("tls.cert_file={d}/server.pem", "tls.key_file={d}/client.key"), "does not match"),
    (("tls.cert_file={d}/server.pem", "tls.key_file={d}/garbage.pem"), "garbage.pem"),
    (("tls.cert_file={d}/server.pem", "tls.key_file={d}/server.key", "tls.ca_file={d}/nope.pem"),
     "nope.pem"),
    (("tls.cert_file={d}/server.pem", "tls.key_file={d}/server.key", "tls.client_auth=required"),
     "tls.ca_file"),
])
def test_bad_files_fail_at_creation_naming_the_file(pki, sets, needle):
    args = [ECHO, "--port", "0"]
    for s in sets:
        args += ["--set", s.format(d=pki)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert r.stdout == ""  # never listened
    assert needle in r.stderr, r.stderr


def log_events(stderr, name="open"):
    out = []
    for line in stderr.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == name:
            out.append(ev)
    return out


def test_mutual_tls_required(pki):
    sets = server_sets(pki, "server", f"tls.ca_file={pki}/ca.pem", "tls.client_auth=required")
    e = Echo(*sets)
    try:
        assert run(echo_once(e.port, client_ctx(pki, "client"))) == "hello over tls"
        for cert in (None, "intruder"):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError, websockets.exceptions.WebSocketException)):
                run(echo_once(e.port, client_ctx(pki, cert)))
        assert run(echo_once(e.port, client_ctx(pki, "client"))) == "hello over tls"
    finally:
        err = e.stop()
    opens = log_events(err)
    assert len(opens) == 2
    assert all(ev.get("tls_subject") == "O=wsgate tests,CN=alice" for ev in opens), opens


def test_mutual_tls_optional(pki):
    sets = server_sets(pki, "server", f"tls.ca_file={pki}/ca.pem", "tls.client_auth=optional")
    e = Echo(*sets)
    try:
        assert run(echo_once(e.port, client_ctx(pki))) == "hello over tls"
        assert run(echo_once(e.port, client_ctx(pki, "client"))) == "hello over tls"
        with pytest.raises((ssl.SSLError, ConnectionError, OSError, websockets.exceptions.WebSocketException)):
            run(echo_once(e.port, client_ctx(pki, "intruder")))
    finally:
        err = e.stop()
    subjects = [ev.get("tls_subject", "") for ev in log_events(err)]
    assert subjects == ["", "O=wsgate tests,CN=alice"], subjects


def peer_cn(ws):
    cert = ws.transport.get_extra_info("ssl_object").getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_reload_without_restart(pki):
    work = tempfile.mkdtemp(prefix="wsg-reload-")
    try:
        shutil.copy(f"{pki}/server.pem", f"{work}/cert.pem")
        shutil.copy(f"{pki}/server.key", f"{work}/key.pem")
        with Echo(f"tls.cert_file={work}/cert.pem", f"tls.key_file={work}/key.pem") as e:
            async def scenario():
                ctx = client_ctx(pki)
                old = await websockets.connect(f"wss://127.0.0.1:{e.port}/", ssl=ctx, open_timeout=5)
                assert peer_cn(old) == "wsgate test server"
                # New files in place, then SIGHUP (wsgate-echo calls wsg_server_reload_tls).
                shutil.copy(f"{pki}/server2.pem", f"{work}/cert.pem")
                shutil.copy(f"{pki}/server2.key", f"{work}/key.pem")
                e.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                while True:
                    async with websockets.connect(f"wss://127.0.0.1:{e.port}/", ssl=ctx,
                                                  open_timeout=5) as new:
                        if peer_cn(new) == "wsgate reloaded server":
                            await new.send("new")
                            assert await asyncio.wait_for(new.recv(), 5) == "new"
                            break
                    assert time.monotonic() < deadline, "reload not applied"
                    await asyncio.sleep(0.05)
                # The established connection kept its session and still works.
                await old.send("old")
                assert await asyncio.wait_for(old.recv(), 5) == "old"
                await old.close()
            run(scenario())
            # A bad pair is refused and the current one stays.
            shutil.copy(f"{pki}/client.key", f"{work}/key.pem")
            e.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            assert run(echo_once(e.port, client_ctx(pki))) == "hello over tls"
        err = e.err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Both outcomes are structured events, not only a plain stderr line.
    reloaded = log_events(err, "tls_reloaded")
    failed = log_events(err, "tls_reload_failed")
    assert [ev["cert_file"] for ev in reloaded] == [f"{work}/cert.pem"], err
    assert len(failed) == 1, err
    assert failed[0]["level"] == "error" and failed[0]["cert_file"] == f"{work}/cert.pem", failed
    assert "key" in failed[0]["message"], failed
