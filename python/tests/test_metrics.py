"""server.metrics() (the Prometheus text), server.ready and the metrics
listener (/metrics, /healthz, /readyz) against real clients."""

import re
import urllib.error
import urllib.request

import pytest

import wsgate
from conftest import connect, recv, run, url_of, wait_until


def sample(text, series):
    """The value of one series, e.g. 'wsgate_closes_total{cause="peer"}'."""
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
    assert m, f"{series} not in the exposition"
    return float(m.group(1))


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers.get("content-type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type"), e.read().decode()


def test_metrics_count_connections_messages_and_closes(make_server):
    server = make_server(options={"metrics.listen": "127.0.0.1:0"})

    @server.on_message
    def echo(conn, message):
        conn.send(message)

    assert server.ready is False  # not started
    assert "wsgate_ready 0" in server.metrics().splitlines()
    server.start()
    assert server.ready  # from start's return

    async def body():
        async with connect(url_of(server)) as a, connect(url_of(server)) as b:
            for ws in (a, b):
                await ws.send("hello")
                assert await recv(ws) == "hello"
            text = server.metrics()
            assert sample(text, "wsgate_connections") == 2
            assert sample(text, "wsgate_handshakes_accepted_total") == 2
            assert sample(text, "wsgate_received_messages_total") == 2
            assert sample(text, "wsgate_received_bytes_total") == 10
            assert sample(text, "wsgate_sent_messages_total") == 2
            await a.close(code=1000)
        wait_until(lambda: server.connection_count == 0)

    run(body())
    text = server.metrics()
    assert text.endswith("\n") and "# TYPE wsgate_closes_total counter" in text
    assert sample(text, "wsgate_connections") == 0
    assert sample(text, 'wsgate_closes_total{cause="peer"}') == 2
    assert sample(text, 'wsgate_close_codes_total{code="1000"}') == 2
    # The listener serves the same text.
    status, ctype, served = get(server.metrics_port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert sample(served, "wsgate_handshakes_accepted_total") == 2
    assert get(server.metrics_port, "/healthz")[0] == 200
    assert get(server.metrics_port, "/readyz")[:1] == (200,)
    assert get(server.metrics_port, "/other")[0] == 404
    server.stop()
    assert server.ready is False
    assert "wsgate_ready 0" in server.metrics().splitlines()


def test_no_metrics_listener_unless_configured(make_server):
    server = make_server()
    server.start()
    with pytest.raises(wsgate.StateError, match="metrics.listen"):
        server.metrics_port
    assert server.ready
    assert sample(server.metrics(), "wsgate_ready") == 1


def test_bad_metrics_address_is_refused():
    for bad in ["localhost:9100", "1.2.3.4:", "::1:9100", "[::1]", "127.0.0.1:70000", "x"]:
        with pytest.raises(wsgate.InvalidArgumentError, match="metrics.listen"):
            wsgate.Server(port=0, options={"metrics.listen": bad})
