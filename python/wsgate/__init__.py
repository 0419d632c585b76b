"""wsgate: an embeddable WebSocket server (C++ core on libwebsockets) for Python.

A thin, Pythonic layer over wsgate's stable C ABI::

    import wsgate

    server = wsgate.Server(port=8080)

    @server.on_message
    def handle(conn, message):      # str for text, bytes for binary
        server.broadcast(message)

    with server:                    # starts the service thread; stops gracefully on exit
        server.serve_forever()      # until Ctrl-C or server.stop()

Handlers run on the server's service thread holding the GIL; the service
loop and every blocking call run without it. ``send``, ``close`` and
``broadcast`` work from any thread. ``@server.on_auth`` decides on
upgrade requests (``auth.mode`` ``callback`` or ``jwt+callback``) and
``conn.user_id`` / ``conn.claims`` tell who connected. ``conn.queue_policy``,
``conn.queued_bytes`` and ``@server.on_drain`` handle slow readers.
``server.topic_presence``, ``server.user_presence`` and
``server.session_set/get/delete`` ask the cluster (or this instance alone)
who is where and keep small session data. History topics
(``cluster.history_topics``) give every message a :class:`Position`:
``server.subscribe_from(conn, topic, from_)`` gives a returning client what
it missed and ``@server.on_history`` shapes what subscribers get (e.g. with
the position embedded). Errors are :class:`WsgateError`
subclasses carrying the core's status and message. The core's structured log
events go to the ``"wsgate"`` logger. :mod:`wsgate.aio` delivers events to
an asyncio loop. See python/README.md for the whole guide.
"""

from __future__ import annotations

import atexit as _atexit

from . import _core
from ._auth import AuthRequest
from ._config import Config, OptionInfo, OptionValue, options
from ._errors import (
    BusyError,
    ClosedError,
    ClusterError,
    InternalError,
    InvalidArgumentError,
    LimitError,
    NetworkError,
    NoMemoryError,
    NotFoundError,
    StateError,
    Status,
    TimedOutError,
    GoneError,
    TLSError,
    WsgateError,
)
from ._history import HistoryMessage, Position
from ._results import Presence
from ._server import (
    QUEUE_POLICIES,
    RECONNECT_ADVICE,
    Connection,
    Message,
    Server,
    _stop_all_at_exit,
    close_code_advice,
    logger,
)

__all__ = [
    "Server",
    "Connection",
    "AuthRequest",
    "Message",
    "Presence",
    "Position",
    "HistoryMessage",
    "QUEUE_POLICIES",
    "RECONNECT_ADVICE",
    "close_code_advice",
    "Config",
    "OptionInfo",
    "OptionValue",
    "options",
    "library_version",
    "logger",
    "Status",
    "WsgateError",
    "InvalidArgumentError",
    "NotFoundError",
    "ClosedError",
    "NoMemoryError",
    "StateError",
    "NetworkError",
    "TLSError",
    "BusyError",
    "LimitError",
    "InternalError",
    "ClusterError",
    "TimedOutError",
    "GoneError",
]


def library_version() -> str:
    """The loaded libwsgate's version string (``wsg_version()``)."""
    return _core.version()


#: The version of libwsgate this package was built against.
__version__: str = "{}.{}.{}".format(
    _core.HEADER_VERSION_NUM // 10000, _core.HEADER_VERSION_NUM // 100 % 100,
    _core.HEADER_VERSION_NUM % 100)

if _core.version_num() // 10000 != _core.HEADER_VERSION_NUM // 10000:
    raise ImportError(
        f"wsgate: loaded libwsgate {_core.version()} does not match the {__version__} "
        "headers this binding was built with (different major version)")

# Public classes present themselves as wsgate.X (tracebacks, reprs, pickles).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj

_atexit.register(_stop_all_at_exit)
