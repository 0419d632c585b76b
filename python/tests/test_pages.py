"""Server.add_page: static responses over plain HTTP beside the WebSockets."""

import http.client

import pytest

import wsgate
from conftest import connect, recv, run, url_of

PAGE = "<!doctype html><title>chat</title><p>héllo ✓</p>\n"


def fetch(server, method, path):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_page_is_served_beside_websockets(make_server):
    server = make_server()
    server.add_page("/", PAGE)
    server.add_page("/app.js", b"console.log(1)\n", content_type="text/javascript")

    @server.on_message
    def echo(conn, message):
        conn.send(message)

    server.start()
    status, headers, body = fetch(server, "GET", "/?room=lobby")
    assert status == 200
    assert body == PAGE.encode("utf-8")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-length"] == str(len(PAGE.encode("utf-8")))
    assert headers["cache-control"] == "no-cache"
    status, headers, body = fetch(server, "HEAD", "/")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(PAGE.encode("utf-8")))
    status, headers, body = fetch(server, "GET", "/app.js")
    assert (status, headers["content-type"], body) == (200, "text/javascript", b"console.log(1)\n")
    status, headers, _ = fetch(server, "POST", "/")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert fetch(server, "GET", "/nothing")[0] == 426

    async def body():
        async with connect(url_of(server, "/?room=lobby")) as ws:
            await ws.send("still a websocket")
            assert await recv(ws) == "still a websocket"
    run(body())


def test_add_page_errors(make_server):
    server = make_server()
    with pytest.raises(wsgate.InvalidArgumentError, match="must start with '/'"):
        server.add_page("index.html", PAGE)
    with pytest.raises(wsgate.InvalidArgumentError, match="'\\?' or '#'"):
        server.add_page("/?a=b", PAGE)
    with pytest.raises(wsgate.InvalidArgumentError, match="NUL"):
        server.add_page("/a\0b", PAGE)
    with pytest.raises(wsgate.InvalidArgumentError, match="printable ASCII"):
        server.add_page("/", PAGE, content_type="text/html\r\nx: y")
    with pytest.raises(wsgate.InvalidArgumentError, match="larger than 1048576"):
        server.add_page("/", b"x" * (1024 * 1024 + 1))
    with pytest.raises(TypeError, match="page body must be str"):
        server.add_page("/", 42)  # type: ignore[arg-type]
    server.start()
    with pytest.raises(wsgate.StateError, match="before wsg_server_listen"):
        server.add_page("/", PAGE)
    # None of the refused pages exists.
    assert fetch(server, "GET", "/")[0] == 426
    server.stop()
    server.add_page("/", bytearray(b"ok"), content_type="text/plain")
    server.start()
    assert fetch(server, "GET", "/")[::2] == (200, b"ok")
