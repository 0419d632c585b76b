"""Server and Connection: the Pythonic layer over ``wsgate._core``."""

from __future__ import annotations

import inspect
import json
import logging
import math
import signal
import threading
import types
import weakref
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union, cast,
                    overload)

from . import _core as _native
from ._auth import AuthRequest, _decide, _parse_claims
from ._config import Config, OptionValue, option_name
from ._errors import BusyError, InvalidArgumentError, NotFoundError, Status
from ._history import HistoryMessage, Position, position_arg
from ._results import Presence, ResultCallback, outcome, value_or_raise

__all__ = ["Server", "Connection", "Message", "QUEUE_POLICIES", "RECONNECT_ADVICE", "close_code_advice", "logger"]

#: The logger that receives the core's structured events and the tracebacks
#: of exceptions raised by handlers.
logger = logging.getLogger("wsgate")

#: A message: ``str`` for text, ``bytes`` for binary (any bytes-like object
#: may be sent as binary).
Message = Union[str, bytes]

OpenHandler = Callable[["Connection"], Any]
MessageHandler = Callable[["Connection", Any], Any]
CloseHandler = Callable[["Connection", int, str], Any]
DrainHandler = Callable[["Connection", int], Any]
AuthHandler = Callable[[AuthRequest], Union[str, bool, None]]
HistoryHandler = Callable[[str, Position, HistoryMessage], Any]
_H = TypeVar("_H", bound=Callable[..., Any])

# Servers that were started and not yet stopped; the atexit hook stops them.
_live: "weakref.WeakSet[Server]" = weakref.WeakSet()
_live_lock = threading.Lock()


_UNSET: Any = object()

#: The queue policy names, in the header's order (``WSG_QUEUE_POLICY_MAP``,
#: read from the loaded library): the values of ``limits.queue_policy`` and
#: of :attr:`Connection.queue_policy`.
QUEUE_POLICIES: Tuple[str, ...] = tuple(name for name, _ in _native.queue_policies())
_POLICY_VALUES: Dict[str, int] = dict(_native.queue_policies())

#: What a client should do after a close code, by name, in the header's order
#: (``WSG_RECONNECT_MAP``): ``"backoff"`` (reconnect after a jittered, growing
#: delay), ``"no"`` (not until something changes: a new token, a fixed
#: client), ``"app"`` (the application's protocol decides).
RECONNECT_ADVICE: Tuple[str, ...] = tuple(name for name, _ in _native.reconnect_advices())
_ADVICE_VALUES: Dict[str, int] = dict(_native.reconnect_advices())


def close_code_advice(code: int) -> str:
    """The close-code contract: one of :data:`RECONNECT_ADVICE` for ``code``
    (wsgate's codes from ``WSG_CLOSE_CODE_MAP``; ``"app"`` for other codes in
    3000-4999; ``"no"`` for the rest). :meth:`Server.close_code_advice` also
    knows the codes a server declared."""
    return _native.close_code_advice(int(code))


class Connection:
    """One WebSocket connection of a :class:`Server`.

    Handlers receive the same object for a connection from ``on_open`` to
    ``on_close``. It names the connection by its id and refers to its server
    weakly. Facts fixed at the upgrade (peer, path, query, origin,
    subprotocol, tls_subject, user_id, claims, connected_at) are read once
    and kept, so they stay readable after the close; counters are read live.
    Once the connection is gone, :meth:`send`, :meth:`close` and the
    counters raise :class:`~wsgate.NotFoundError`.

    ``data`` is a dict for the application's own per-connection state.
    """

    __slots__ = ("_id", "_server", "_facts", "_claims", "data", "close_code", "close_reason",
                 "close_cause", "__weakref__")

    def __init__(self, server: "Server", conn_id: int) -> None:
        self._id = conn_id
        self._server = weakref.ref(server)
        self._facts: Optional[Dict[str, Any]] = None
        self._claims: Any = _UNSET
        #: Free for the application: state that lives with the connection.
        self.data: Dict[str, Any] = {}
        #: Close code once ``on_close`` ran (1006 when there was no close frame).
        self.close_code: Optional[int] = None
        #: Close reason once ``on_close`` ran.
        self.close_reason: Optional[str] = None
        #: Why the connection ended once ``on_close`` ran: ``"peer"``,
        #: ``"app"``, ``"shutdown"``, ``"lost"``, ``"too_big"``,
        #: ``"invalid_utf8"``, ``"backpressure"``, ``"pong_timeout"``,
        #: ``"write_timeout"``, ``"idle_timeout"``, ``"close_timeout"``,
        #: ``"token_expired"``, ``"rate_limit"``, ``"bad_compression"`` (the
        #: core's ``wsg_close_cause_str``; new causes appear as is).
        self.close_cause: Optional[str] = None

    # ---------------------------------------------------------------- identity

    @property
    def id(self) -> int:
        """The connection id: 64-bit, never reused while the server lives."""
        return self._id

    @property
    def server(self) -> "Server":
        """The server this connection belongs to (NotFoundError once it is gone)."""
        return self._server_or_raise()

    @property
    def closed(self) -> bool:
        """True once ``on_close`` has run for this connection."""
        return self.close_code is not None

    def __repr__(self) -> str:
        facts = self._facts
        peer = f" {facts['peer_address']}:{facts['peer_port']}" if facts else ""
        state = " closed" if self.closed else ""
        return f"<wsgate.Connection {self._id}{peer}{state}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Connection):
            return NotImplemented
        return self._id == other._id and self._server() is other._server()

    def __hash__(self) -> int:
        return hash(self._id)

    # ---------------------------------------------------------------- actions

    def send(self, message: Message) -> None:
        """Queue a message: ``str`` goes as text, bytes-like as binary.

        Copied before it returns; written when the socket is writable, after
        earlier messages. Any thread. Raises NotFoundError (stale id),
        ClosedError (closing), InvalidArgumentError (too big)."""
        self._native().send(self._id, message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` (1000, 1001, 1008, 1011..1014 or 3000..4999) and
        a UTF-8 ``reason`` of at most 123 bytes, after the messages already
        queued. ``on_close`` then reports cause ``"app"``. Any thread."""
        self._native().close(self._id, code, reason)

    def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` (1..255 bytes of UTF-8): every
        :meth:`Server.publish` to it reaches this connection until it
        unsubscribes or closes. Subscribing twice is harmless. Any thread."""
        self._native().subscribe(self._id, topic, True)

    def unsubscribe(self, topic: str) -> None:
        """End a subscription (harmless when there is none). Any thread."""
        self._native().subscribe(self._id, topic, False)

    @property
    def queue_policy(self) -> str:
        """What this connection's full send queue does with one more message:
        one of :data:`wsgate.QUEUE_POLICIES` (``"close"``, ``"drop_newest"``,
        ``"drop_oldest"``, ``"conflate"``; see the README's "Delivery and
        backpressure"). The server's ``limits.queue_policy`` until set here.

        Setting it gives this connection its own policy (the queue limit,
        close code and water marks stay the server's); it is applied on the
        service thread in order with sends, so reading it back right after
        may still show the old one for a moment. A name that is not a policy
        raises :class:`~wsgate.InvalidArgumentError` (a ValueError) listing
        the valid ones; a closing connection raises ClosedError. Any thread."""
        return cast(str, self.info()["queue_policy"])

    @queue_policy.setter
    def queue_policy(self, name: str) -> None:
        value = _POLICY_VALUES.get(name) if isinstance(name, str) else None
        if value is None:
            raise InvalidArgumentError(
                f"connection {self._id}: queue policy {name!r} is not one of "
                f"{', '.join(QUEUE_POLICIES)}", Status.EINVAL)
        self._native().set_queue_policy(self._id, value)

    @property
    def topics(self) -> List[str]:
        """The topics this connection is subscribed to (a snapshot)."""
        return list(self._native().conn_info(self._id)["topics"])

    def set_timeout(self, key: str, value: int) -> None:
        """Override one heartbeat setting for this connection only, e.g.
        ``conn.set_timeout("heartbeat.pong_wait_ms", 120_000)`` for a mobile
        client. ``key`` is one of ``heartbeat.ping_interval_ms``,
        ``heartbeat.pong_wait_ms``, ``heartbeat.write_wait_ms``,
        ``heartbeat.idle_timeout_ms``, ``heartbeat.close_wait_ms``; ``value``
        must lie in that option's range (0 disables where allowed). Applied in
        order with sends and closes. Any thread."""
        self._native().set_timeout(self._id, key, value)

    # ---------------------------------------------------------------- info

    def info(self) -> Dict[str, Any]:
        """A snapshot of every field: id, peer_address, peer_port, path, query,
        origin, subprotocol, connected_at_ms, duration_ms, messages_in,
        bytes_in, messages_out, bytes_out, rtt_us (-1 before the first pong),
        tls_subject (verified client certificate subject, "" if none), user_id
        (authenticated user id, "" if none), claims (the verified JWT's claims
        as JSON text, "" without a JWT), compression (True when
        permessage-deflate was negotiated), queued_bytes (bytes waiting in
        the send queue), messages_dropped (messages the queue policy
        dropped), queue_policy (the policy's name), topics. A field the
        loaded library does not know yet is None."""
        info = self._native().conn_info(self._id)
        if self._facts is None:
            self._facts = {k: info[k] for k in _FACTS}
        return info

    def _fact(self, key: str) -> Any:
        if self._facts is None:
            self.info()
        assert self._facts is not None
        return self._facts[key]

    @property
    def peer_address(self) -> str:
        """The peer's IP address (``"127.0.0.1"``, ``"::1"``)."""
        return cast(str, self._fact("peer_address"))

    @property
    def peer_port(self) -> int:
        """The peer's TCP port."""
        return cast(int, self._fact("peer_port"))

    @property
    def peer(self) -> Tuple[str, int]:
        """``(peer_address, peer_port)``."""
        return (self.peer_address, self.peer_port)

    @property
    def path(self) -> str:
        """The request path without the query."""
        return cast(str, self._fact("path"))

    @property
    def query(self) -> str:
        """The query string as sent (percent-encoded, without ``?``), ``access_token``
        removed; ``""`` if none. Decode it with :func:`urllib.parse.parse_qs`."""
        return cast(str, self._fact("query"))

    @property
    def origin(self) -> str:
        """The Origin header; ``""`` if none."""
        return cast(str, self._fact("origin"))

    @property
    def subprotocol(self) -> str:
        """The subprotocol agreed (from ``server.subprotocols``); ``""`` if none."""
        return cast(str, self._fact("subprotocol"))

    @property
    def tls_subject(self) -> str:
        """The verified client certificate's subject (RFC 2253) with mutual
        TLS; ``""`` if none."""
        return cast(str, self._fact("tls_subject") or "")

    @property
    def compression(self) -> bool:
        """True when the client negotiated permessage-deflate
        (``compression.enabled``)."""
        return bool(self._fact("compression"))

    @property
    def user_id(self) -> Optional[str]:
        """The authenticated user id (the JWT's ``auth.jwt.user_claim``, or
        what the ``on_auth`` handler accepted); None without authentication."""
        return cast(Optional[str], self._fact("user_id")) or None

    @property
    def claims(self) -> Optional[Dict[str, Any]]:
        """The verified JWT's claims as a dict (``auth.mode`` ``jwt`` or
        ``jwt+callback``); None without a JWT. Parsed once; the same dict
        is returned every time."""
        if self._claims is _UNSET:
            self._claims = _parse_claims(cast(Optional[str], self._fact("claims")))
        return cast(Optional[Dict[str, Any]], self._claims)

    @property
    def connected_at(self) -> float:
        """Unix time of the upgrade, in seconds."""
        return cast(int, self._fact("connected_at_ms")) / 1000.0

    @property
    def duration(self) -> float:
        """Seconds connected so far (live)."""
        return cast(int, self.info()["duration_ms"]) / 1000.0

    @property
    def rtt(self) -> Optional[float]:
        """Latest ping round-trip time in seconds (live); None before the
        first pong."""
        us = cast(Optional[int], self.info()["rtt_us"])
        return None if us is None or us < 0 else us / 1e6

    @property
    def messages_in(self) -> int:
        """Whole messages received (live)."""
        return cast(int, self.info()["messages_in"])

    @property
    def bytes_in(self) -> int:
        """Message payload bytes received (live)."""
        return cast(int, self.info()["bytes_in"])

    @property
    def messages_out(self) -> int:
        """Messages queued to this connection (live)."""
        return cast(int, self.info()["messages_out"])

    @property
    def bytes_out(self) -> int:
        """Message payload bytes queued to this connection (live)."""
        return cast(int, self.info()["bytes_out"])

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in this connection's send queue (live): data and
        control frames the kernel has not taken yet. Above the server's
        ``limits.queue_high_water_bytes`` while the client takes nothing more,
        the connection is *behind* (see :meth:`Server.on_drain`)."""
        return cast(int, self.info()["queued_bytes"])

    @property
    def messages_dropped(self) -> int:
        """Messages the queue policy dropped or replaced (``drop_newest``,
        ``drop_oldest``, ``conflate``) (live); counted in
        :attr:`messages_out` too."""
        return cast(int, self.info()["messages_dropped"])

    # ---------------------------------------------------------------- internals

    def _server_or_raise(self) -> "Server":
        server = self._server()
        if server is None:
            raise NotFoundError(f"connection {self._id}: its server no longer exists",
                                Status.ENOTFOUND)
        return server

    def _native(self) -> _native.Server:
        return self._server_or_raise()._core


_FACTS = ("id", "peer_address", "peer_port", "path", "query", "origin", "subprotocol",
          "connected_at_ms", "tls_subject", "user_id", "claims", "compression")


def _is_async(handler: Any) -> bool:
    """True for coroutine functions (and objects whose __call__ is one)."""
    return (inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler)
            or inspect.iscoroutinefunction(getattr(handler, "__call__", None)))


def _dispatchers(ref: "weakref.ReferenceType[Server]") -> Tuple[Callable[..., None], ...]:
    """The callables the core calls on the service thread. They reach the
    server through a weak reference, so the C++ side never keeps it alive
    (a running server can be garbage-collected)."""

    def on_open(conn_id: int) -> None:
        server = ref()
        if server is not None:
            server._dispatch_open(conn_id)

    def on_message(conn_id: int, message: Message) -> None:
        server = ref()
        if server is not None:
            server._dispatch_message(conn_id, message)

    def on_close(conn_id: int, code: int, reason: str, cause: str) -> None:
        server = ref()
        if server is not None:
            server._dispatch_close(conn_id, code, reason, cause)

    def on_auth(request: _native.AuthRequest) -> None:
        server = ref()
        if server is not None:
            server._dispatch_auth(request)
        else:
            request.refuse(401, "the server object is gone")

    def on_drain(conn_id: int, queued_bytes: int) -> None:
        server = ref()
        if server is not None:
            server._dispatch_drain(conn_id, queued_bytes)

    def on_history(topic: str, epoch: int, offset: int, native: _native.HistoryMessage) -> None:
        server = ref()
        if server is not None:
            server._dispatch_history(topic, epoch, offset, native)

    return on_open, on_message, on_close, on_auth, on_drain, on_history


def _forward_log(level: int, event: str, text: str) -> None:
    """Sends one structured event of the core to the "wsgate" logger. The
    core's levels (10, 20, 30, 40) are logging's. The record's message is
    the JSON line; ``record.wsgate`` holds it parsed."""
    if not logger.isEnabledFor(level):
        return
    try:
        fields = json.loads(text)
    except ValueError:
        fields = {"event": event, "raw": text}
    logger.log(level, "%s", text, extra={"wsgate": fields, "wsgate_event": event})


class Server:
    """A WebSocket server.

    ``host`` and ``port`` set ``listen.host`` and ``listen.port``; ``options``
    maps dotted option names (see :func:`wsgate.options`) to values; keyword
    arguments name options as ``section__name`` or by their unique last part
    (``max_connections=100``; a shared one such as ``level`` raises
    InvalidArgumentError naming the options it could mean). Every value is
    validated by the core: a bad one raises
    :class:`~wsgate.InvalidArgumentError` carrying the core's message.

    Handlers are set with the decorators :meth:`on_open`, :meth:`on_message`,
    :meth:`on_close`, :meth:`on_drain` and :meth:`on_auth` (at any time), and
    :meth:`on_history` (before listening). They run on the
    service thread with the GIL held and must not block; an exception they raise is logged to the
    ``"wsgate"`` logger with its traceback and the server keeps serving. The
    core's structured log events go to that logger too.

    Use it as a context manager (``with server:`` starts it and stops it on
    exit) or call :meth:`start`/:meth:`stop`; :meth:`serve_forever` waits for
    a stop, Ctrl-C or SIGTERM. Send, close and broadcast work from any thread. A
    running server that is garbage-collected stops first; servers still
    running at interpreter exit are stopped by an atexit hook.
    """

    def __init__(self, host: Optional[str] = None, port: Optional[int] = None,
                 options: Optional[Mapping[str, OptionValue]] = None, *,
                 config: Optional[Config] = None, **kwargs: OptionValue) -> None:
        cfg = Config(config) if config is not None else Config()
        if options:
            cfg.update(options)
        for key, value in kwargs.items():
            cfg[option_name(key)] = value
        if host is not None:
            cfg["listen.host"] = host
        if port is not None:
            cfg["listen.port"] = port
        self._config = cfg
        self._options = types.MappingProxyType(cfg.to_dict())
        self._core: _native.Server = _native.Server(cfg._core)
        self._conns: Dict[int, Connection] = {}
        self._on_open: Optional[OpenHandler] = None
        self._on_message: Optional[MessageHandler] = None
        self._on_close: Optional[CloseHandler] = None
        self._on_auth: Optional[AuthHandler] = None
        self._on_drain: Optional[DrainHandler] = None
        self._on_history: Optional[HistoryHandler] = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._stop_hooks: List[Callable[[], None]] = []
        self._dispatch = _dispatchers(weakref.ref(self))
        self._install()

    # ---------------------------------------------------------------- handlers

    def on_open(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(conn)`` runs when a connection completed the
        upgrade. Returns the handler; None unregisters."""
        self._on_open = handler
        return handler

    def on_message(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(conn, message)`` runs for every whole message,
        ``str`` for text and ``bytes`` for binary. Returns the handler; None
        unregisters (messages then do not enter Python at all)."""
        self._on_message = handler
        self._install()
        return handler

    def on_close(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(conn, code, reason)`` runs exactly once for
        every opened connection when it ended (``conn.close_cause`` says
        why). The connection's info is still readable during the call."""
        self._on_close = handler
        return handler

    def on_drain(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(conn, queued_bytes)`` runs once each time a
        connection that was *behind* has caught up: its send queue passed
        ``limits.queue_high_water_bytes`` (default half of
        ``limits.max_queue_bytes``) while the client took nothing more, and
        is now back at ``limits.queue_low_water_bytes`` (default a quarter of
        the high-water mark). ``queued_bytes`` is what is still queued.

        Pair it with :attr:`Connection.queued_bytes`: stop sending to a
        connection above the high-water mark, resume here, and no message is
        ever lost to a queue policy (:mod:`wsgate.aio` does this for you in
        ``await conn.send``). Never called for a closing connection. Runs on
        the service thread like the other handlers (must not block; sending
        is allowed; an exception is logged to the ``"wsgate"`` logger).
        Returns the handler; None unregisters."""
        self._on_drain = cast(Optional[DrainHandler], handler)
        self._core.set_drain_handler(self._dispatch[4] if handler is not None else None)
        return handler

    def on_auth(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(request)`` authenticates every upgrade request
        when ``auth.mode`` is ``callback`` or ``jwt+callback`` (after the path,
        Origin and, in ``jwt+callback`` mode, JWT checks). ``request`` is an
        :class:`~wsgate.AuthRequest`, valid only during the call.

        The handler decides with ``request.accept(user_id=None,
        timeouts=None)`` / ``request.refuse(status=401|403, reason="")`` or by
        returning: a non-empty ``str`` accepts as that user id, ``True``
        accepts, ``False``, ``""`` or ``None`` (with no call made) refuses
        with 401. An exception is logged to the ``"wsgate"`` logger and
        refuses with 401 (fail closed).

        It runs **on the service thread, before the upgrade completes**, and
        must decide at once: never block (no network or database round trip;
        every connection waits meanwhile). It must be a plain function:
        coroutine functions raise TypeError. May be set or replaced at any
        time; without a handler, requests that need one are refused with 401.
        Returns the handler; None unregisters."""
        if handler is not None and _is_async(handler):
            raise TypeError(
                "on_auth handlers must be synchronous: the decision is made on the service "
                "thread before the upgrade completes; use a plain def that does not block "
                f"(got coroutine function {getattr(handler, '__qualname__', handler)!r})")
        if handler is not None and not callable(handler):
            raise TypeError(f"on_auth handler must be callable, not {type(handler).__name__}")
        self._on_auth = cast(Optional[AuthHandler], handler)
        self._core.set_auth_handler(self._dispatch[3] if handler is not None else None)
        return handler

    def on_history(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(topic, pos, msg)`` shapes every message of a
        history topic (``cluster.history_topics``) before this instance's
        subscribers get it: ``pos`` is its :class:`~wsgate.Position`,
        ``msg`` a :class:`~wsgate.HistoryMessage` with ``.type``
        (``"text"``/``"binary"``), ``.payload`` (as published: ``str`` or
        ``bytes``) and ``.set(data)`` to replace what they get (same type),
        e.g. the payload with ``str(pos)`` embedded so a client knows where
        it is and can come back :meth:`subscribe_from` there. Without a hook
        (or when it does not call ``set``) subscribers get the payload as
        published.

        It runs on the service thread, holding the GIL, once per message on
        each instance, and again for each connection a message is replayed
        to, so it must shape the same message the same way (from ``topic``,
        ``pos`` and the payload only), be quick and not block (no I/O; every
        delivery waits for it), and must not publish to history topics.
        ``msg`` is valid only during the
        call: kept and used later it raises :class:`~wsgate.StateError`. An
        exception is logged to the ``"wsgate"`` logger and the message goes
        out as it stands (as published, or as set before the exception).

        Only before the server listens (before :meth:`start`,
        :meth:`listen` or ``with``, or after :meth:`stop`): StateError
        otherwise (the core's ``wsg_server_on_history``). Coroutine
        functions raise TypeError. Returns the handler; None unregisters."""
        if handler is not None and _is_async(handler):
            raise TypeError(
                "on_history handlers must be synchronous: they shape each message on the service "
                f"thread before it is sent (got coroutine function {getattr(handler, '__qualname__', handler)!r})")
        if handler is not None and not callable(handler):
            raise TypeError(f"on_history handler must be callable, not {type(handler).__name__}")
        self._core.set_history_handler(self._dispatch[5] if handler is not None else None)
        self._on_history = cast(Optional[HistoryHandler], handler)
        return handler

    def _install(self) -> None:
        on_open, on_message, on_close = self._dispatch[:3]
        self._core.set_handlers(on_open, on_message if self._on_message else None, on_close,
                                _forward_log)

    # ---------------------------------------------------------------- close codes

    def set_close_advice(self, first: int, last: int, advice: str) -> None:
        """Declare what clients should do after your own close codes
        ``first``..``last`` (3000 <= first <= last <= 4999): ``advice`` is
        one of :data:`wsgate.RECONNECT_ADVICE`. The ``close`` log event's
        ``advice`` and :meth:`close_code_advice` follow it; a later
        declaration wins where ranges overlap. InvalidArgumentError for a
        range outside 3000-4999 or an unknown advice."""
        if advice not in _ADVICE_VALUES:
            raise InvalidArgumentError(
                f"unknown advice {advice!r}: one of {', '.join(RECONNECT_ADVICE)}", Status.EINVAL)
        self._core.set_close_advice(int(first), int(last), _ADVICE_VALUES[advice])

    def close_code_advice(self, code: int) -> str:
        """The advice for ``code`` on this server: :func:`wsgate.close_code_advice`
        plus the codes declared with :meth:`set_close_advice`."""
        return self._core.close_code_advice(int(code))

    # ---------------------------------------------------------------- static pages

    def add_page(self, path: str, body: Union[str, bytes, bytearray, memoryview],
                 content_type: str = "text/html; charset=utf-8") -> None:
        """Serve ``body`` at ``path`` to plain HTTP requests (a browser
        opening ``http://host:port/``), for example the page whose script
        opens the WebSocket. GET gets 200 with ``content_type``, HEAD the
        same head without the body, other methods 405; a WebSocket handshake
        on the same path is still upgraded. ``str`` bodies are sent as UTF-8.
        Pages are public (no Origin, auth or rate check).

        ``path`` starts with ``/`` and is matched exactly, without the query
        (``/?room=a`` is served by ``/``); at most 1024 bytes of visible
        ASCII, no ``?`` or ``#``. The body is copied (at most 1 MiB). Adding
        a page at a path that has one replaces it. Only before the server
        listens (before :meth:`start`, :meth:`listen` or ``with``, or after
        :meth:`stop`): StateError otherwise; InvalidArgumentError for a bad
        path, content type or size (wsg_server_add_page)."""
        self._core.add_page(path, content_type, body)

    # ---------------------------------------------------------------- lifecycle

    def listen(self) -> None:
        """Bind the listening socket without serving yet, so :attr:`port` is
        known. Optional: :meth:`start` listens first if needed."""
        self._core.listen()

    def start(self) -> None:
        """Listen (if not yet) and serve on a new service thread; returns at
        once. A stopped server can be started again. Raises StateError when
        already running, NetworkError when the address cannot be bound."""
        self._check_auth_setup()
        self._core.start()
        self._stopped.clear()
        with _live_lock:
            _live.add(self)

    def stop(self) -> None:
        """Stop gracefully: new upgrades get 503, every client gets close 1001
        after what was queued for it, close handshakes get
        ``server.shutdown_timeout_ms``, ``on_close`` runs for each connection,
        and the port is released. Blocks until done (GIL released). Stopping a
        stopped server does nothing.

        Called from a handler (on the service thread, which cannot wait for
        itself) it only requests the stop, which a helper thread carries out,
        and returns at once."""
        try:
            self._core.stop()
        except BusyError:
            threading.Thread(target=self._stop_quietly, name="wsgate-stop", daemon=True).start()
            return
        self._after_stop()

    def drain(self, seconds: Optional[float] = None) -> None:
        """Stop gracefully over ``seconds`` for a rolling restart (default:
        the option ``server.drain_ms``): at once :attr:`draining` is true and
        new upgrades get 503 with ``retry-after``; open connections are
        closed with 1012 (``close_cause`` ``"drain"``) in a random order at a
        steady pace over the duration, so clients do not all come back in the
        same second; then :meth:`stop`. Blocks until stopped (GIL released).
        0 is :meth:`stop`. From a handler, use :meth:`request_stop` with
        ``server.drain_ms`` set (a handler cannot wait for its own thread:
        BusyError)."""
        ms = int(self._config["server.drain_ms"]) if seconds is None else int(round(seconds * 1000))
        self._core.drain(ms)
        self._after_stop()

    @property
    def draining(self) -> bool:
        """True from the start of a drain or stop until the server listens
        again: not ready for new clients (``wsg_server_draining``)."""
        return self._core.draining

    def _after_stop(self) -> None:
        self._stopped.set()
        with _live_lock:
            _live.discard(self)
        for hook in list(self._stop_hooks):
            try:
                hook()
            except Exception:
                logger.exception("wsgate: exception in a stop hook")

    def request_stop(self) -> None:
        """Ask for the graceful stop of :meth:`stop` without waiting for it:
        returns at once, from any thread, a handler or a signal handler
        (``signal.signal(signal.SIGHUP, lambda *_: server.request_stop())``).

        The service loop begins the stop within ``heartbeat.tick_ms``;
        :meth:`serve_forever` then returns once it is done. Without
        ``serve_forever``, call :meth:`stop` (or leave the ``with`` block) to
        wait for it. Asked while the server is not serving, the request is
        kept and the next :meth:`start` stops at once (the core's
        ``wsg_server_request_stop``)."""
        self._core.request_stop()

    def _check_auth_setup(self) -> None:
        mode = str(self._options.get("auth.mode", "none"))
        wants_handler = mode in ("callback", "jwt+callback")
        if wants_handler and self._on_auth is None:
            logger.warning("wsgate: auth.mode=%s but no on_auth handler is set: upgrade "
                           "requests are refused with 401 until one is", mode)
        elif not wants_handler and self._on_auth is not None:
            logger.warning("wsgate: an on_auth handler is set but auth.mode=%s never calls it "
                           "(use callback or jwt+callback)", mode)

    def _stop_quietly(self) -> None:
        try:
            self.stop()
        except Exception:
            logger.exception("wsgate: stop requested from a handler failed")

    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end of :meth:`stop`."""
        return not self._stopped.is_set()

    def serve_forever(self, poll_interval: float = 0.2) -> None:
        """Start if not running, then wait until :meth:`stop` is called from
        any thread or a handler, :meth:`request_stop` from anywhere, Ctrl-C or
        SIGTERM.

        The wait releases the GIL and wakes every ``poll_interval`` seconds so
        Ctrl-C works in the main thread: on KeyboardInterrupt, SIGTERM (a plain
        ``kill``, ``docker stop``, systemd) or a :meth:`request_stop`, the
        server is stopped gracefully (clients get 1001; with ``server.drain_ms`` set, a
        :meth:`drain` over that long) and serve_forever
        *returns normally* (it does not re-raise), so ``with server:
        server.serve_forever()`` ends cleanly.

        SIGTERM is handled only when serve_forever runs in the main thread
        and SIGTERM has no handler of the application's yet (its disposition
        is ``SIG_DFL``); the previous disposition is restored on return."""
        if not self.running:
            self.start()
        sigterm: List[int] = []  # the handler appends: no lock it could wait for
        restore = _catch_sigterm(sigterm)
        try:
            stop = False
            try:
                while not self._stopped.wait(poll_interval):
                    # SIGTERM, or a request_stop (from any thread) that has
                    # ended the loop already: stop (joins) and return.
                    if sigterm or not self._core.listening:
                        stop = True
                        break
            except KeyboardInterrupt:
                stop = True
            if stop:
                # server.drain_ms: SIGTERM and Ctrl-C drain (a rolling
                # restart) rather than close every client at once.
                self.drain()
        finally:
            restore()

    def __enter__(self) -> "Server":
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reload_tls(self) -> None:
        """Reload ``tls.cert_file`` and ``tls.key_file`` (same paths, new
        contents) without a restart: new connections get the new certificate,
        established ones keep theirs. The files are checked first; on failure
        (TLSError naming the file) the old pair stays. StateError when TLS is
        off. Any thread."""
        self._core.reload_tls()

    # ---------------------------------------------------------------- queries

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``). StateError when not
        listening."""
        return self._core.port

    @property
    def options(self) -> Mapping[str, OptionValue]:
        """The options this server was created with (read-only)."""
        return self._options

    @property
    def config(self) -> Config:
        """A copy of this server's configuration (e.g. to create another)."""
        return self._config.copy()

    @property
    def connection_count(self) -> int:
        """Number of open connections."""
        return self._core.conn_count()

    def metrics(self) -> str:
        """The server's metrics as Prometheus text (format 0.0.4): what the
        metrics listener (option ``metrics.listen``) serves at ``/metrics``,
        for an application that serves them itself (content type
        ``text/plain; version=0.0.4``). Any thread."""
        return self._core.metrics()

    @property
    def ready(self) -> bool:
        """True while the server accepts upgrades: started, its loop turning,
        no drain or stop begun (what ``/readyz`` answers). Any thread."""
        return self._core.ready

    @property
    def metrics_port(self) -> int:
        """The metrics listener's bound port (``metrics.listen`` with port
        0). StateError without a metrics listener or when not listening."""
        return self._core.metrics_port

    def connections(self) -> List[Connection]:
        """The open connections (a snapshot)."""
        return [self.connection(i) for i in self._core.conn_ids()]

    def connection(self, conn_id: int) -> Connection:
        """The Connection object for an id (the one handlers receive while it
        is open; a new one, whose calls raise NotFoundError, when stale)."""
        conn = self._conns.get(conn_id)
        return conn if conn is not None else Connection(self, conn_id)

    # ---------------------------------------------------------------- sending

    def broadcast(self, message: Message) -> None:
        """Send one message to every open connection (framed once, shared).
        ``str`` is text, bytes-like binary. Any thread. StateError when the
        server is not running."""
        self._core.broadcast(message)

    def send(self, conn: Union[Connection, int], message: Message) -> None:
        """Send to one connection given as a Connection or an id. Any thread."""
        self._core.send(conn.id if isinstance(conn, Connection) else conn, message)

    def broadcast_except(self, conn: Union[Connection, int], message: Message) -> None:
        """Send to every open connection but ``conn`` (typically the sender).
        Any thread."""
        self._core.broadcast_except(conn.id if isinstance(conn, Connection) else conn, message)

    def send_many(self, conns: Iterable[Union[Connection, int]], message: Message) -> None:
        """Send one message, framed once, to several connections; stale ids
        are skipped. Any thread."""
        self._core.send_many([c.id if isinstance(c, Connection) else c for c in conns], message)

    def publish(self, topic: str, message: Message) -> None:
        """Send one message to every subscriber of ``topic`` (framed once; a
        topic nobody follows is not an error). Any thread. Cost: the topic's
        subscribers, not the server's connections."""
        self._core.publish(topic, message)

    def subscribers(self, topic: str) -> List[int]:
        """Ids of the connections subscribed to ``topic`` (a snapshot)."""
        return list(self._core.subscribers(topic))

    def user_connections(self, user: str) -> List[int]:
        """Ids of the open connections of an authenticated user (its
        ``Connection.user_id``); empty when it has none."""
        return list(self._core.user_conns(user))

    def send_to_user(self, user: str, message: Message) -> None:
        """Send to every open connection of ``user``. NotFoundError when the
        user has none. Any thread."""
        self._core.send_to_user(user, message)

    def close_user(self, user: str, code: int = 1000, reason: str = "") -> None:
        """Close every open connection of ``user`` (cause ``"app"``).
        NotFoundError when it has none. Any thread."""
        self._core.close_user(user, code, reason)

    # ---------------------------------------------------------------- presence and session data

    @overload
    def topic_presence(self, topic: str, *, timeout: Optional[float] = None) -> List[Presence]: ...
    @overload
    def topic_presence(self, topic: str, *, callback: ResultCallback) -> None: ...

    def topic_presence(self, topic: str, *, timeout: Optional[float] = None,
                       callback: Optional[ResultCallback] = None) -> Optional[List[Presence]]:
        """Every connection subscribed to ``topic`` on every instance of the
        cluster (this instance's alone without ``cluster.redis``), as a list
        of :class:`~wsgate.Presence` (``conn``, ``user_id``, ``node``,
        ``since``: when it subscribed).

        Blocks until the answer comes (the GIL released), at most
        ``timeout`` seconds (None: no limit of yours; the core answers
        within ``cluster.command_timeout_ms`` anyway) and raises
        :class:`~wsgate.TimedOutError` after that. Raises ClusterError when
        Redis is down, hung or refusing: its ``presence`` attribute then
        holds this instance's own entries. StateError when the server is not
        running (or stops before the answer); InvalidArgumentError for a bad
        topic.

        In a handler (the service thread, which the answer needs) the
        blocking form raises :class:`~wsgate.BusyError`: pass
        ``callback=fn`` instead. The call then returns None at once and
        ``fn(entries, error)`` runs once on the service thread with the
        answer (``error`` None, or the WsgateError, with this instance's
        entries beside a ClusterError); like a handler it must not block, and
        an exception it raises is logged. :mod:`wsgate.aio` has the same
        call as an awaitable. Any thread."""
        if callback is not None:
            _no_timeout_with(callback, timeout)
            self._core.topic_presence(topic, _answer_to(callback, "presence", "topic_presence"))
            return None
        return cast(List[Presence], value_or_raise(
            "presence", self._core.topic_presence_wait(topic, _timeout_ms(timeout))))

    @overload
    def user_presence(self, user_id: str, *, timeout: Optional[float] = None) -> List[Presence]: ...
    @overload
    def user_presence(self, user_id: str, *, callback: ResultCallback) -> None: ...

    def user_presence(self, user_id: str, *, timeout: Optional[float] = None,
                      callback: Optional[ResultCallback] = None) -> Optional[List[Presence]]:
        """Every open connection of ``user_id`` on every instance (empty when
        the user is nowhere), as :class:`~wsgate.Presence` entries whose
        ``since`` is the upgrade's time. Same forms, timeout and errors as
        :meth:`topic_presence`."""
        if callback is not None:
            _no_timeout_with(callback, timeout)
            self._core.user_presence(user_id, _answer_to(callback, "presence", "user_presence"))
            return None
        return cast(List[Presence], value_or_raise(
            "presence", self._core.user_presence_wait(user_id, _timeout_ms(timeout))))

    def session_set(self, key: str, value: Union[str, bytes, bytearray, memoryview],
                    ttl: Optional[float] = None, *, timeout: Optional[float] = None,
                    callback: Optional[ResultCallback] = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, shared by every
        instance (in Redis under ``cluster.prefix``; in this instance's
        memory without ``cluster.redis``). ``key``: 1..255 bytes of UTF-8
        (a user id, a session token of yours); ``value``: bytes-like, or str
        stored as UTF-8, at most ``cluster.session_max_bytes`` (LimitError);
        ``ttl``: None for ``cluster.session_ttl_ms``. A set replaces the
        value and its TTL.

        Blocks until stored, like :meth:`topic_presence` (``timeout``,
        BusyError in a handler, TimedOutError: the write may still happen),
        or with ``callback=fn`` returns at once and ``fn(None, error)`` runs
        on the service thread. ClusterError when Redis did not take it.
        Any thread."""
        ttl_ms = _ttl_ms(ttl)
        if callback is not None:
            _no_timeout_with(callback, timeout)
            self._core.session_set(key, value, ttl_ms, _answer_to(callback, "none", "session_set"))
            return
        value_or_raise("none", self._core.session_set_wait(key, value, ttl_ms, _timeout_ms(timeout)))

    @overload
    def session_get(self, key: str, *, timeout: Optional[float] = None) -> Optional[bytes]: ...
    @overload
    def session_get(self, key: str, *, callback: ResultCallback) -> None: ...

    def session_get(self, key: str, *, timeout: Optional[float] = None,
                    callback: Optional[ResultCallback] = None) -> Optional[bytes]:
        """The value stored under ``key`` (bytes, whatever instance stored
        it), or None when there is none or it expired. Same forms, timeout
        and errors as :meth:`session_set`; the callback gets
        ``fn(value_or_None, error)``."""
        if callback is not None:
            _no_timeout_with(callback, timeout)
            self._core.session_get(key, _answer_to(callback, "value", "session_get"))
            return None
        return cast(Optional[bytes], value_or_raise(
            "value", self._core.session_get_wait(key, _timeout_ms(timeout))))

    def session_delete(self, key: str, *, timeout: Optional[float] = None,
                       callback: Optional[ResultCallback] = None) -> None:
        """Remove ``key`` (no error when there was none). Same forms, timeout
        and errors as :meth:`session_set`."""
        if callback is not None:
            _no_timeout_with(callback, timeout)
            self._core.session_delete(key, _answer_to(callback, "none", "session_delete"))
            return
        value_or_raise("none", self._core.session_delete_wait(key, _timeout_ms(timeout)))

    # ---------------------------------------------------------------- history

    @overload
    def subscribe_from(self, conn: Union[Connection, int], topic: str,
                       from_: Union[None, Position, str] = None, *,
                       timeout: Optional[float] = None) -> Position: ...
    @overload
    def subscribe_from(self, conn: Union[Connection, int], topic: str,
                       from_: Union[None, Position, str] = None, *,
                       callback: ResultCallback) -> None: ...

    def subscribe_from(self, conn: Union[Connection, int], topic: str,
                       from_: Union[None, Position, str] = None, *, timeout: Optional[float] = None,
                       callback: Optional[ResultCallback] = None) -> Optional[Position]:
        """Subscribe ``conn`` to ``topic``, a history topic (listed in
        ``cluster.history_topics``), and give it every message after
        ``from_`` that it missed, then the live ones: no gap, no duplicate
        (live messages published meanwhile wait for the missed ones).
        ``from_`` is a :class:`~wsgate.Position`, its text ``"EPOCH-OFFSET"``
        (e.g. from the client's query string; other text raises
        InvalidArgumentError before anything is done), or None: nothing
        from the past. ``Position(0, 0)`` asks for the whole history.

        The connection is subscribed at once, whatever the answer. The
        answer is a :class:`~wsgate.Position`: the last message given from
        the history, or the topic's current position when nothing was
        missed (``Position(0, 0)`` before the first message). Raises
        :class:`~wsgate.GoneError` (a LookupError) when ``from_`` is older
        than the history keeps, ahead of it, or of another epoch: nothing
        was replayed, resync the client your own way; ClusterError when
        Redis is down (live messages only); NotFoundError when the
        connection closed meanwhile (or the id is stale);
        InvalidArgumentError for a bad topic, a topic without history or a
        connection of another instance; StateError when the server stops
        before the answer.

        Blocks until the answer (the GIL released), at most ``timeout``
        seconds (then TimedOutError; the call goes on). In a handler (the
        service thread, which the answer needs) the blocking form raises
        :class:`~wsgate.BusyError` and does nothing: pass ``callback=fn``,
        which returns None at once and runs ``fn(position, error)`` once on
        the service thread (``error`` None or the WsgateError, ``position``
        None beside an error). :mod:`wsgate.aio` has it as an awaitable.
        Any thread."""
        conn_id = conn.id if isinstance(conn, Connection) else conn
        start = position_arg(from_)
        if callback is not None:
            _no_timeout_with(callback, timeout)
            self._core.subscribe_from(conn_id, topic, start,
                                      _answer_to(callback, "position", "subscribe_from"))
            return None
        return cast(Position, value_or_raise(
            "position", self._core.subscribe_from_wait(conn_id, topic, start, _timeout_ms(timeout))))

    # ---------------------------------------------------------------- dispatch (service thread)

    def _dispatch_open(self, conn_id: int) -> None:
        conn = Connection(self, conn_id)
        self._conns[conn_id] = conn
        handler = self._on_open
        if handler is not None:
            try:
                handler(conn)
            except BaseException:
                logger.exception("wsgate: exception in on_open handler (connection %d)", conn_id)

    def _call_handler(self, what: str, handler: Optional[Callable[..., Any]], conn_id: int, arg: Any) -> None:
        """Calls ``handler(conn, arg)``; an exception is logged, never raised
        into the core."""
        if handler is None:
            return
        conn = self._conns.get(conn_id)
        if conn is None:
            conn = Connection(self, conn_id)
        try:
            handler(conn, arg)
        except BaseException:
            logger.exception("wsgate: exception in %s handler (connection %d)", what, conn_id)

    def _dispatch_message(self, conn_id: int, message: Message) -> None:
        self._call_handler("on_message", self._on_message, conn_id, message)

    def _dispatch_drain(self, conn_id: int, queued_bytes: int) -> None:
        self._call_handler("on_drain", self._on_drain, conn_id, queued_bytes)

    def _high_water_bytes(self) -> int:
        """The queue size above which a connection counts as behind: the
        core's rule for ``limits.queue_high_water_bytes`` (0: half of
        ``limits.max_queue_bytes``)."""
        high = int(self._options.get("limits.queue_high_water_bytes", 0))
        return high if high > 0 else int(self._options["limits.max_queue_bytes"]) // 2

    def _dispatch_auth(self, native: _native.AuthRequest) -> None:
        handler = self._on_auth
        if handler is None:
            native.refuse(401, "no on_auth handler is set")
            return
        request = AuthRequest(native)
        try:
            result = handler(request)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # no "never awaited" warning
                raise TypeError("an on_auth handler must decide synchronously; it returned an "
                                "awaitable")
            _decide(request, result)
        except BaseException as exc:
            where = ""
            try:
                where = f" ({request.peer_address} {request.path})"
            except Exception:
                pass
            logger.exception("wsgate: exception in on_auth handler%s: refused with 401", where)
            native.refuse(401, f"exception in the on_auth handler: {type(exc).__name__}")

    def _dispatch_history(self, topic: str, epoch: int, offset: int,
                          native: _native.HistoryMessage) -> None:
        handler = self._on_history
        if handler is None:
            return
        try:
            handler(topic, Position._of(epoch, offset), HistoryMessage(native))
        except BaseException:
            logger.exception("wsgate: exception in on_history handler (topic %r, position %d-%d): "
                             "the message goes out as it stands", topic, epoch, offset)

    def _dispatch_close(self, conn_id: int, code: int, reason: str, cause: str) -> None:
        conn = self._conns.get(conn_id)
        if conn is None:
            conn = Connection(self, conn_id)
        conn.close_code = code
        conn.close_reason = reason
        conn.close_cause = cause
        handler = self._on_close
        try:
            if handler is not None:
                handler(conn, code, reason)
        except BaseException:
            logger.exception("wsgate: exception in on_close handler (connection %d)", conn_id)
        finally:
            self._conns.pop(conn_id, None)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        try:
            where = f" port {self._core.port}"
        except Exception:
            where = ""
        return f"<wsgate.Server {state}{where}>"


def _timeout_ms(timeout: Optional[float]) -> int:
    """A blocking call's wait in ms (-1: no limit); rounded up, so a short
    timeout still looks once."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise InvalidArgumentError(f"timeout must be None or a number of seconds >= 0, not {timeout!r}",
                                   Status.EINVAL)
    if timeout * 1000 >= 2 ** 62:
        return -1  # past any deadline that matters (math.inf included)
    return int(math.ceil(timeout * 1000))


def _ttl_ms(ttl: Optional[float]) -> int:
    """session_set's ttl in ms (0: the server's ``cluster.session_ttl_ms``)."""
    if ttl is None:
        return 0
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise InvalidArgumentError(
            f"ttl must be None (cluster.session_ttl_ms) or a finite number of seconds > 0, not {ttl!r}",
            Status.EINVAL)
    return max(1, int(round(ttl * 1000)))


def _no_timeout_with(callback: Any, timeout: Optional[float]) -> None:
    if not callable(callback):
        raise TypeError(f"callback must be callable, not {type(callback).__name__}")
    if timeout is not None:
        raise TypeError("timeout applies to the blocking form only: with callback= the call "
                        "returns at once")


def _answer_to(callback: ResultCallback, kind: str, what: str) -> Callable[[int, str, Any], None]:
    """What the glue calls with the core's answer (on the service thread):
    ``callback(result, error)``, an exception it raises logged."""

    def answer(status: int, message: str, payload: Any) -> None:
        try:
            result, error = outcome(kind, (status, message, payload))
            callback(result, error)
        except BaseException:
            logger.exception("wsgate: exception in the %s callback", what)
    return answer


def _catch_sigterm(seen: List[int]) -> Callable[[], None]:
    """Makes SIGTERM append to ``seen`` while :meth:`Server.serve_forever` waits,
    when this is the main thread and the application has no SIGTERM handler
    (its disposition is ``SIG_DFL``). Returns what restores SIG_DFL.

    The handler only records the signal; serve_forever sees it within
    ``poll_interval`` and stops. It does not call ``request_stop``: a second
    SIGTERM during the stop would reach the core after it and, kept for the
    next start, stop a restart at once."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def on_sigterm(signum: int, frame: Any) -> None:
        seen.append(signum)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return restore


def _stop_all_at_exit() -> None:
    """atexit hook: stops servers still running before the interpreter is torn
    down (clients get 1001), then tells the glue that callbacks must no longer
    enter Python."""
    with _live_lock:
        servers = list(_live)
    for server in servers:
        try:
            server.stop()
        except Exception:
            pass
    _native._python_exiting(10.0)
