"""The package's surface: docstrings on every public name, stubs that match
the runtime, the installed files."""

import ast
import inspect
import os

import pytest

import wsgate
import wsgate.aio
from wsgate import _core

PKG = os.path.dirname(wsgate.__file__)


def public_members(cls):
    for name, value in vars(cls).items():
        if name.startswith("_") or name in ("STATUS",):
            continue
        yield name, value


@pytest.mark.parametrize("module", [wsgate, wsgate.aio], ids=lambda m: m.__name__)
def test_every_public_name_has_a_docstring(module):
    assert module.__doc__
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for member, value in public_members(obj):
                target = value.fget if isinstance(value, property) else value
                if isinstance(value, (staticmethod, classmethod)):
                    target = value.__func__
                if callable(target) or isinstance(value, property):
                    if not inspect.getdoc(target):
                        missing.append(f"{name}.{member}")
    assert not missing, f"no docstring: {missing}"


def test_installed_files():
    for f in ("py.typed", "__init__.pyi", "_core.pyi", "aio.py", "__main__.py"):
        assert os.path.exists(os.path.join(PKG, f)), f
    core_dir = os.path.dirname(_core.__file__)
    assert core_dir == PKG
    if not os.environ.get("WSGATE_LIB_DIR") and os.environ.get("WSGATE_PKG_CONFIG") != "1":
        # Self-contained: the library travels with the extension.
        assert os.path.exists(os.path.join(PKG, "libwsgate.so.0"))


def test_package_stub_matches_runtime():
    tree = ast.parse(open(os.path.join(PKG, "__init__.pyi")).read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    assert set(wsgate.__all__) <= names
    for name in names:
        assert hasattr(wsgate, name), name


def test_core_stub_matches_runtime():
    tree = ast.parse(open(os.path.join(PKG, "_core.pyi")).read())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            assert callable(getattr(_core, node.name)), node.name
        elif isinstance(node, ast.ClassDef):
            cls = getattr(_core, node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name != "__init__":
                    assert hasattr(cls, item.name), f"{node.name}.{item.name}"
            runtime = {n for n in vars(cls) if not n.startswith("_")}
            stubbed = {i.name for i in node.body if isinstance(i, ast.FunctionDef)}
            assert runtime <= stubbed, f"{node.name}: not in the stub: {runtime - stubbed}"
    module_funcs = {n for n, v in vars(_core).items()
                    if callable(v) and not inspect.isclass(v) and not n.startswith("__")}
    stub_funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert module_funcs <= stub_funcs, module_funcs - stub_funcs


USER_CODE = '''
from typing import Any, Dict, Optional, Union

import wsgate
from wsgate.aio import AsyncServer

server = wsgate.Server(port=0, options={"log.level": "warn"}, max_connections=10)

@server.on_message
def handle(conn: wsgate.Connection, message: wsgate.Message) -> None:
    conn.send(message)
    server.broadcast(message)
    peer: tuple[str, int] = conn.peer
    rtt = conn.rtt
    if rtt is not None:
        seconds: float = rtt

@server.on_auth
def authenticate(request: wsgate.AuthRequest) -> Union[str, bool, None]:
    claims: Optional[Dict[str, Any]] = request.jwt_claims
    if claims is not None and request.header("x-api-key") is None:
        request.accept(user_id=request.jwt_user, timeouts={"heartbeat.idle_timeout_ms": 1000})
        return None
    if request.token == "":
        request.refuse(403, "no token")
        return None
    return request.peer_address == "127.0.0.1" and request.path == "/"

@server.on_open
def opened(conn: wsgate.Connection) -> None:
    user: Optional[str] = conn.user_id
    claims = conn.claims
    if user is not None and claims is not None:
        conn.send(f"{user} {claims.get('role')}")

port: int = server.port
names = [o.name for o in wsgate.options()]
here: list[wsgate.Presence] = server.topic_presence("room", timeout=1.5)
nodes = [p.node for p in server.user_presence("u")]
cart: Optional[bytes] = server.session_get("cart")
server.session_set("cart", b"v", ttl=60, timeout=2)
server.session_delete("cart", callback=lambda result, error: None)
server.user_presence("u", callback=lambda result, error: print(result, error))

@server.on_history
def shape(topic: str, pos: wsgate.Position, msg: wsgate.HistoryMessage) -> None:
    if msg.type == "text" and isinstance(msg.payload, str):
        msg.set(f"{pos} {msg.payload}")

start: wsgate.Position = wsgate.Position.parse("12-3")
reached: wsgate.Position = server.subscribe_from(1, "room:a", start, timeout=1.0)
epoch: int = server.subscribe_from(server.connection(1), "room:a", "12-3").epoch
server.subscribe_from(1, "room:a", callback=lambda pos, error: print(pos, error))

async def main() -> None:
    a = AsyncServer(port=0)
    a.on_auth(lambda request: request.header("x-user"))
    async with a:
        seen: list[wsgate.Presence] = await a.topic_presence("room", timeout=1.0)
        value: Optional[bytes] = await a.session_get("k")
        at: wsgate.Position = await a.subscribe_from(1, "room:a", wsgate.Position(12, 3), timeout=1.0)
        async for ev in a.events():
            if ev.kind == "message" and ev.message is not None:
                uid: Optional[str] = ev.conn.user_id
                await ev.conn.send(ev.message)
'''


def test_types_check_strictly(tmp_path):
    """The stubs and inline hints pass mypy --strict, for the package and for
    typical user code (skipped when mypy is not installed)."""
    pytest.importorskip("mypy")
    import subprocess
    import sys

    user = tmp_path / "user_code.py"
    user.write_text(USER_CODE)
    site = os.path.dirname(PKG)
    for args, cwd in ((["-p", "wsgate"], site), ([str(user)], str(tmp_path))):
        r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                            "--cache-dir", os.devnull, *args], cwd=cwd, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
