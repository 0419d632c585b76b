"""Authentication before the upgrade: auth.mode jwt (HS256 secret file;
tokens in the Authorization header, the access_token query parameter or a
cookie), the @server.on_auth decorator (callback and jwt+callback modes),
AuthRequest's lifetime, Connection.user_id / claims and token expiry."""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

import wsgate
from wsgate import _core
from wsgate.aio import AsyncServer
from conftest import connect, recv, run, url_of, wait_until

SECRET = b"0123456789abcdef0123456789abcdef-python-binding-test"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims, secret=SECRET):
    """An HS256 JWT."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def token_for(sub="alice", ttl=600, **claims):
    return mint({"sub": sub, "exp": int(time.time()) + ttl, "role": "tester", **claims})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "hs256.secret"
    path.write_bytes(SECRET)
    return str(path)


def auth_options(secret_file=None, mode="jwt", sources="header", **extra):
    options = {"auth.mode": mode, "auth.token_sources": sources}
    if secret_file is not None:
        options["auth.jwt.secret_file"] = secret_file
    options.update(extra)
    return options


async def refused_with(url, **kw):
    """Connects expecting a refusal; returns the InvalidStatusCode."""
    with pytest.raises(InvalidStatusCode) as info:
        async with connect(url, **kw):
            pass
    return info.value


def whoami_server(make_server, options):
    """A server answering every message with the connection's user id and
    claims; records the connections it opened and closed."""
    server = make_server(options=options)
    opened, closed = [], []

    @server.on_open
    def on_open(conn):
        opened.append(conn)

    @server.on_message
    def on_message(conn, message):
        conn.send(json.dumps({"user": conn.user_id, "claims": conn.claims}))

    @server.on_close
    def on_close(conn, code, reason):
        closed.append((conn, code, reason, conn.close_cause))

    server.opened, server.closed = opened, closed
    return server


async def whoami(ws):
    await ws.send("?")
    return json.loads(await recv(ws))


def reject_reasons(caplog):
    return [r.wsgate.get("reason", "") for r in caplog.records
            if getattr(r, "wsgate", {}).get("event") == "reject"]


# ---------------------------------------------------------------- auth.mode=jwt


def test_jwt_token_in_header(make_server, secret_file):
    server = whoami_server(make_server, auth_options(secret_file))
    server.start()
    token = token_for("alice")

    async def body():
        async with connect(url_of(server), extra_headers=bearer(token)) as ws:
            me = await whoami(ws)
            assert me["user"] == "alice"
            assert me["claims"]["sub"] == "alice" and me["claims"]["role"] == "tester"
            info = server.opened[0].info()  # the raw fields
            assert info["user_id"] == "alice" and json.loads(info["claims"])["sub"] == "alice"
        # No token, a bad signature, an expired token, a malformed one: 401.
        for headers in ({}, bearer(mint({"sub": "eve", "exp": int(time.time()) + 600},
                                        secret=b"another-secret-another-secret-!!")),
                        bearer(token_for("old", ttl=-3600)), bearer("not.a.jwt")):
            err = await refused_with(url_of(server), extra_headers=headers)
            assert err.status_code == 401
            assert err.headers["WWW-Authenticate"].startswith("Bearer")
    run(body())
    conn = server.opened[0]
    assert conn.user_id == "alice"
    assert conn.claims is conn.claims  # parsed once
    assert conn.claims["role"] == "tester" and isinstance(conn.claims["exp"], int)


def test_jwt_token_in_query(make_server, secret_file):
    server = whoami_server(make_server, auth_options(secret_file, sources="query"))
    server.start()
    token = token_for("bob")

    async def body():
        async with connect(url_of(server, f"/room?access_token={token}&x=1")) as ws:
            assert (await whoami(ws))["user"] == "bob"
        # Only the query is a source here: the header is not looked at.
        err = await refused_with(url_of(server, "/room?x=1"), extra_headers=bearer(token))
        assert err.status_code == 401
    run(body())
    conn = server.opened[0]
    assert conn.query == "x=1"  # the token stays out of the query
    assert conn.user_id == "bob"


def test_jwt_token_in_cookie_needs_origin(make_server, secret_file):
    server = whoami_server(make_server,
                           auth_options(secret_file, sources="cookie",
                                        **{"auth.cookie_name": "session"}))
    server.start()
    token = token_for("carol")
    origin = f"http://127.0.0.1:{server.port}"

    async def body():
        cookie = {"Cookie": f"theme=dark; session={token}"}
        async with connect(url_of(server), extra_headers={**cookie, "Origin": origin}) as ws:
            assert (await whoami(ws))["user"] == "carol"
        # A cookie rides along on any page's request: without an Origin, 403.
        err = await refused_with(url_of(server), extra_headers=cookie)
        assert err.status_code == 403
        # A foreign page's Origin: 403.
        err = await refused_with(url_of(server),
                                 extra_headers={**cookie, "Origin": "http://evil.example"})
        assert err.status_code == 403
        err = await refused_with(url_of(server), extra_headers={"Origin": origin})
        assert err.status_code == 401
    run(body())
    assert [c.user_id for c in server.opened] == ["carol"]
    assert server.opened[0].origin == origin


def test_token_expiry_closes_with_1008(make_server, secret_file):
    server = whoami_server(make_server, auth_options(secret_file, **{"auth.jwt.leeway_s": 0}))
    server.start()
    token = token_for("dave", ttl=2)

    async def body():
        async with connect(url_of(server), extra_headers=bearer(token)) as ws:
            assert (await whoami(ws))["user"] == "dave"
            t0 = time.monotonic()
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await recv(ws, timeout=10)
            assert info.value.code == 1008
            assert time.monotonic() - t0 < 5
    run(body())
    wait_until(lambda: server.closed)
    conn, code, reason, cause = server.closed[0]
    assert code == 1008 and cause == "token_expired" and conn.close_cause == "token_expired"
    assert conn.user_id == "dave"  # facts stay readable after the close
    assert _core.close_cause_str(12) == "token_expired"


# ---------------------------------------------------------------- auth.mode=callback


def test_callback_decides_by_return_value(make_server):
    server = whoami_server(make_server, auth_options(mode="callback"))
    seen = []
    verdicts = {"alice": "alice", "anyone": True, "no": False, "nothing": None, "empty": ""}

    @server.on_auth
    def authenticate(request):
        seen.append({
            "path": request.path, "query": request.query, "peer": request.peer,
            "peer_address": request.peer_address, "origin": request.origin,
            "token": request.token, "tls_subject": request.tls_subject,
            "jwt_user": request.jwt_user, "jwt_claims": request.jwt_claims,
            "key": request.header("x-api-key"), "absent": request.header("X-Absent"),
            "valid": request.valid,
        })
        return verdicts.get(request.header("X-Api-Key") or "")

    assert authenticate is not None  # the decorator returns the handler
    server.start()

    async def body():
        async with connect(url_of(server, "/room?a=1&b=2"),
                           extra_headers={"X-Api-Key": "alice",
                                          "Authorization": "Bearer opaque-token"}) as ws:
            assert (await whoami(ws)) == {"user": "alice", "claims": None}
        async with connect(url_of(server), extra_headers={"X-Api-Key": "anyone"}) as ws:
            assert (await whoami(ws)) == {"user": None, "claims": None}
        for key in ("no", "nothing", "empty", "unknown"):
            err = await refused_with(url_of(server), extra_headers={"X-Api-Key": key})
            assert err.status_code == 401, key
        err = await refused_with(url_of(server))
        assert err.status_code == 401
    run(body())
    assert seen[0] == {
        "path": "/room", "query": "a=1&b=2", "peer": "127.0.0.1", "peer_address": "127.0.0.1",
        "origin": "", "token": "opaque-token", "tls_subject": "", "jwt_user": None,
        "jwt_claims": None, "key": "alice", "absent": None, "valid": True,
    }
    assert seen[1]["token"] == ""
    assert len(seen) == 7
    assert [c.user_id for c in server.opened] == ["alice", None]


def test_callback_accept_and_refuse_calls(make_server, caplog):
    caplog.set_level(logging.WARNING, logger="wsgate")
    server = whoami_server(make_server, auth_options(mode="callback"))

    @server.on_auth
    def authenticate(request):
        kind = request.header("X-Kind")
        if kind == "accept":
            request.accept(user_id="bob", timeouts={"heartbeat.idle_timeout_ms": 500})
        elif kind == "accept-anonymous":
            request.accept()
        elif kind == "refuse":
            request.refuse(403, "not today")
        elif kind == "refuse-401":
            request.refuse()
        elif kind == "refuse-then-true":
            request.refuse(403, "overridden")
            return True  # the return value decides last
        elif kind == "timeout":
            request.set_timeout("heartbeat.idle_timeout_ms", 400)
            return "tim"
        return None

    server.start()

    async def body():
        async with connect(url_of(server), extra_headers={"X-Kind": "accept"}) as ws:
            assert (await whoami(ws))["user"] == "bob"
            with pytest.raises(ConnectionClosed) as info:  # the per-connection idle timeout
                while True:
                    await recv(ws, timeout=10)
            assert info.value.code == 1001
        async with connect(url_of(server), extra_headers={"X-Kind": "accept-anonymous"}) as ws:
            assert (await whoami(ws))["user"] is None
        async with connect(url_of(server), extra_headers={"X-Kind": "refuse-then-true"}) as ws:
            assert (await whoami(ws))["user"] is None
        async with connect(url_of(server), extra_headers={"X-Kind": "timeout"}) as ws:
            assert (await whoami(ws))["user"] == "tim"
            with pytest.raises(ConnectionClosed):
                while True:
                    await recv(ws, timeout=10)
        err = await refused_with(url_of(server), extra_headers={"X-Kind": "refuse"})
        assert err.status_code == 403
        assert "WWW-Authenticate" not in err.headers
        err = await refused_with(url_of(server), extra_headers={"X-Kind": "refuse-401"})
        assert err.status_code == 401
    run(body())
    wait_until(lambda: len(server.closed) == 4)
    causes = {c.user_id: cause for c, _, _, cause in server.closed}
    assert causes["bob"] == "idle_timeout" and causes["tim"] == "idle_timeout"
    wait_until(lambda: any("not today" in r for r in reject_reasons(caplog)))


def test_handler_exception_refuses_401_and_is_logged(make_server, caplog):
    caplog.set_level(logging.WARNING, logger="wsgate")
    server = whoami_server(make_server, auth_options(mode="callback"))

    @server.on_auth
    def authenticate(request):
        kind = request.header("X-Kind")
        if kind == "raise":
            raise RuntimeError("auth backend exploded")
        if kind == "accept-then-raise":
            request.accept("mallory")
            raise ValueError("changed my mind")
        if kind == "bad-return":
            return 42
        if kind == "bad-status":
            request.refuse(500, "no such status")
        if kind == "bad-timeout":
            request.accept("x", timeouts={"heartbeat.nonsense": 1})
        if kind == "coroutine":
            async def later():
                return True
            return later()
        return "ok"

    server.start()
    kinds = ("raise", "accept-then-raise", "bad-return", "bad-status", "bad-timeout",
             "coroutine")

    async def body():
        for kind in kinds:
            err = await refused_with(url_of(server), extra_headers={"X-Kind": kind})
            assert err.status_code == 401, kind
        # The server goes on.
        async with connect(url_of(server), extra_headers={"X-Kind": "fine"}) as ws:
            assert (await whoami(ws))["user"] == "ok"
    run(body())
    errors = [r for r in caplog.records if r.name == "wsgate" and r.exc_info]
    assert {RuntimeError, ValueError, TypeError, wsgate.InvalidArgumentError} <= {
        r.exc_info[0] for r in errors}
    assert len(errors) == len(kinds)
    assert all("on_auth" in r.getMessage() for r in errors)
    assert "auth backend exploded" in caplog.text and "Traceback" in caplog.text
    assert "127.0.0.1" in errors[0].getMessage()
    wait_until(lambda: len(reject_reasons(caplog)) >= len(kinds))
    assert any("RuntimeError" in r for r in reject_reasons(caplog))
    assert [c.user_id for c in server.opened] == ["ok"]  # mallory never got in


def test_auth_request_is_invalid_after_the_call(make_server):
    server = whoami_server(make_server, auth_options(mode="callback"))
    kept, from_thread = [], []

    @server.on_auth
    def authenticate(request):
        kept.append(request)

        def other_thread():
            try:
                request.path
            except wsgate.WsgateError as e:
                from_thread.append(e)
        t = threading.Thread(target=other_thread)
        t.start()
        t.join(5)
        return "alice"

    server.start()

    async def body():
        async with connect(url_of(server)) as ws:
            assert (await whoami(ws))["user"] == "alice"
    run(body())
    assert len(from_thread) == 1 and isinstance(from_thread[0], wsgate.StateError)
    request = kept[0]
    assert request.valid is False
    assert "no longer valid" in repr(request)
    uses = [lambda: request.path, lambda: request.query, lambda: request.peer,
            lambda: request.origin, lambda: request.token, lambda: request.tls_subject,
            lambda: request.jwt_user, lambda: request.jwt_claims,
            lambda: request.header("Host"), lambda: request.accept(),
            lambda: request.accept("x", timeouts={"heartbeat.idle_timeout_ms": 1000}),
            lambda: request.refuse(403), lambda: request.set_timeout(
                "heartbeat.idle_timeout_ms", 1000)]
    for use in uses:
        with pytest.raises(wsgate.StateError) as info:
            use()
        assert isinstance(info.value, wsgate.WsgateError)
        assert info.value.status == wsgate.Status.ESTATE
        assert "on_auth" in info.value.message


def test_jwt_then_callback(make_server, secret_file, caplog):
    caplog.set_level(logging.WARNING, logger="wsgate")
    server = whoami_server(make_server, auth_options(secret_file, mode="jwt+callback"))
    seen = []

    @server.on_auth
    def authenticate(request):
        seen.append((request.jwt_user, request.jwt_claims, request.token))
        claims = request.jwt_claims
        if claims.get("role") == "banned":
            request.refuse(403, "banned user")
            return None
        if claims.get("alias"):
            return claims["alias"]  # accepted under another user id
        request.accept()  # keeps the JWT's user id
        return None

    server.start()
    alice, zed = token_for("alice"), token_for("zed", alias="zorro")
    banned = token_for("mallory", role="banned")

    async def body():
        async with connect(url_of(server), extra_headers=bearer(alice)) as ws:
            me = await whoami(ws)
            assert me["user"] == "alice" and me["claims"]["role"] == "tester"
        async with connect(url_of(server), extra_headers=bearer(zed)) as ws:
            me = await whoami(ws)
            assert me["user"] == "zorro" and me["claims"]["sub"] == "zed"
        err = await refused_with(url_of(server), extra_headers=bearer(banned))
        assert err.status_code == 403
        # An invalid JWT never reaches the handler.
        err = await refused_with(url_of(server), extra_headers=bearer(token_for("x", ttl=-3600)))
        assert err.status_code == 401
    run(body())
    assert [s[0] for s in seen] == ["alice", "zed", "mallory"]
    assert seen[0][1]["sub"] == "alice" and seen[0][1]["role"] == "tester"
    assert seen[0][2] == alice
    assert [(c.user_id, c.claims["sub"]) for c in server.opened] == [("alice", "alice"),
                                                                     ("zorro", "zed")]
    wait_until(lambda: any("banned user" in r for r in reject_reasons(caplog)))


def test_no_handler_refuses_and_handler_can_be_set_any_time(make_server, caplog):
    caplog.set_level(logging.WARNING, logger="wsgate")
    server = whoami_server(make_server, auth_options(mode="callback"))
    server.start()
    assert any("no on_auth handler" in r.getMessage() for r in caplog.records)

    async def attempt():
        try:
            async with connect(url_of(server)) as ws:
                return (await whoami(ws))["user"]
        except InvalidStatusCode as e:
            return e.status_code

    assert run(attempt()) == 401
    server.on_auth(lambda request: "late")  # after start: the trampoline is already there
    assert run(attempt()) == "late"
    server.on_auth(None)
    assert run(attempt()) == 401


def test_handler_without_callback_mode_is_warned_about(make_server, secret_file, caplog):
    caplog.set_level(logging.WARNING, logger="wsgate")
    server = make_server(options=auth_options(secret_file))
    server.on_auth(lambda request: True)
    server.start()
    assert any("never calls it" in r.getMessage() for r in caplog.records)


def test_async_auth_handlers_are_refused(make_server):
    server = make_server(options=auth_options(mode="callback"))

    async def async_handler(request):
        return True

    class AsyncCallable:
        async def __call__(self, request):
            return True

    for bad in (async_handler, AsyncCallable()):
        with pytest.raises(TypeError, match="synchronous"):
            server.on_auth(bad)
        with pytest.raises(TypeError, match="synchronous"):
            AsyncServer(port=0).on_auth(bad)
    with pytest.raises(TypeError, match="callable"):
        server.on_auth("not a function")


def test_async_server_on_auth():
    server = AsyncServer(host="127.0.0.1", port=0,
                         options={"server.shutdown_timeout_ms": 1000,
                                  **auth_options(mode="callback")})
    threads = []

    @server.on_auth
    def authenticate(request):
        threads.append(threading.get_ident())
        return request.header("X-User")

    @server.on_message
    async def echo(conn, message):
        await conn.send(f"{conn.user_id}:{conn.claims}")

    async def body():
        async with server:
            async with connect(f"ws://127.0.0.1:{server.port}/",
                               extra_headers={"X-User": "ann"}) as ws:
                await ws.send("?")
                assert await recv(ws) == "ann:None"
            with pytest.raises(InvalidStatusCode) as info:
                async with connect(f"ws://127.0.0.1:{server.port}/"):
                    pass
            assert info.value.status_code == 401
        return threading.get_ident()

    loop_thread = run(body())
    assert threads and loop_thread not in threads  # the service thread, not the loop
