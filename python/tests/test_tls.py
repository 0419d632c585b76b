"""wss:// through the binding: TLS options, a verified client, mutual TLS
subject, certificate reload, TLS errors carrying the core's message."""

import shutil
import signal
import ssl
import subprocess

import pytest

import wsgate
from conftest import connect, recv, run, wait_until

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")


def make_cert(dir_, name, cn):
    cert, key = dir_ / f"{name}.pem", dir_ / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def certs(tmp_path):
    server_cert, server_key = make_cert(tmp_path, "server", "localhost")
    client_cert, client_key = make_cert(tmp_path, "client", "wsgate-test-client")
    return tmp_path, server_cert, server_key, client_cert, client_key


def client_context(ca, cert=None, key=None):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_wss_echo_with_mutual_tls(make_server, certs):
    _, server_cert, server_key, client_cert, client_key = certs
    server = make_server(options={"tls.cert_file": str(server_cert),
                                  "tls.key_file": str(server_key),
                                  "tls.ca_file": str(client_cert),
                                  "tls.client_auth": "required"})
    opened = []
    server.on_open(opened.append)
    server.on_message(lambda conn, m: conn.send(m))
    server.start()

    async def body():
        url = f"wss://localhost:{server.port}/"
        ctx = client_context(server_cert, client_cert, client_key)
        async with connect(url, ssl=ctx) as ws:
            await ws.send("over tls")
            assert await recv(ws) == "over tls"
            wait_until(lambda: opened)
            assert "CN=wsgate-test-client" in opened[0].tls_subject
            assert opened[0].info()["tls_subject"] == opened[0].tls_subject
    run(body())


def test_reload_tls(make_server, certs):
    tmp, server_cert, server_key, _, _ = certs
    live_cert, live_key = tmp / "live.pem", tmp / "live.key"
    shutil.copy(server_cert, live_cert)
    shutil.copy(server_key, live_key)
    server = make_server(options={"tls.cert_file": str(live_cert), "tls.key_file": str(live_key)})
    server.on_message(lambda conn, m: conn.send(m))
    server.start()
    new_cert, new_key = make_cert(tmp, "renewed", "localhost")
    shutil.copy(new_cert, live_cert)
    shutil.copy(new_key, live_key)
    server.reload_tls()

    async def body():
        url = f"wss://localhost:{server.port}/"
        async with connect(url, ssl=client_context(new_cert)) as ws:  # only the new one verifies
            await ws.send("renewed")
            assert await recv(ws) == "renewed"
    run(body())

    live_key.write_text("not a key")
    with pytest.raises(wsgate.TLSError) as info:
        server.reload_tls()
    assert info.value.status == wsgate.Status.ETLS and str(live_key) in info.value.message

    plain = make_server()
    with pytest.raises(wsgate.StateError):
        plain.reload_tls()


def test_bad_tls_files_fail_at_creation(certs, tmp_path):
    _, server_cert, _, _, client_key = certs
    missing = tmp_path / "missing.pem"
    with pytest.raises(wsgate.TLSError) as info:
        wsgate.Server(port=0, options={"tls.cert_file": str(missing),
                                       "tls.key_file": str(client_key)})
    assert str(missing) in info.value.message
    with pytest.raises(wsgate.TLSError):  # key does not match the certificate
        wsgate.Server(port=0, options={"tls.cert_file": str(server_cert),
                                       "tls.key_file": str(client_key)})


def test_python_m_wsgate_announces_wss_with_tls(child, certs):
    """`python -m wsgate` with a certificate prints a wss:// URL, and that URL works."""
    _, server_cert, server_key, _, _ = certs
    proc = child(["-m", "wsgate", "--host", "127.0.0.1", "--port", "0", "--quiet",
                  "--set", f"tls.cert_file={server_cert}", "--set", f"tls.key_file={server_key}"])
    line = proc.wait_line("listening on ", 20.0)
    assert line.startswith("listening on wss://127.0.0.1:"), line
    port = int(line.split("wss://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    async def body():
        async with connect(f"wss://localhost:{port}/", ssl=client_context(server_cert)) as ws:
            await ws.send("over tls")
            assert await recv(ws) == "over tls"
    run(body())
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0, proc.err()
