"""asyncio layer: receive wsgate events in your own event loop.

The server still runs on its own service thread; every event (open, message,
close) is handed to the loop with ``loop.call_soon_threadsafe``, in arrival
order. Handlers may be plain functions (called in the loop, in order) or
coroutine functions (each call becomes a task, so slow handlers do not hold
up the others; use :meth:`AsyncServer.events` when strict per-event order
matters for async code). Sends are awaitable and never block the loop: the
core copies the data and queues it without waiting for the network. Start and
stop run in the loop's default executor.

::

    import asyncio
    from wsgate.aio import AsyncServer

    async def main():
        server = AsyncServer(port=8080)

        @server.on_message
        async def echo(conn, message):
            await conn.send(message)

        async with server:
            await server.serve_forever()

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import signal
import threading
from typing import (Any, AsyncIterator, Callable, Dict, List, Mapping, NamedTuple, Optional, Set,
                    Tuple, TypeVar, cast)

from ._config import Config, OptionValue
from ._server import Connection, Message, Server, _is_async

__all__ = ["AsyncServer", "AsyncConnection", "Event"]

logger = logging.getLogger("wsgate")
_H = TypeVar("_H", bound=Callable[..., Any])


class AsyncConnection:
    """The asyncio view of a :class:`wsgate.Connection`: the same facts,
    with awaitable :meth:`send` and :meth:`close`. Other attributes of the
    underlying connection (counters, ``set_timeout``...) are reachable too."""

    __slots__ = ("_conn", "__weakref__")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def connection(self) -> Connection:
        """The underlying thread-safe :class:`wsgate.Connection`."""
        return self._conn

    @property
    def id(self) -> int:
        """The connection id."""
        return self._conn.id

    @property
    def data(self) -> Dict[str, Any]:
        """Per-connection application state (shared with the Connection)."""
        return self._conn.data

    @property
    def peer(self) -> Tuple[str, int]:
        """``(peer_address, peer_port)``."""
        return self._conn.peer

    @property
    def path(self) -> str:
        """The request path without the query."""
        return self._conn.path

    @property
    def query(self) -> str:
        """The query parameters joined by ``&``."""
        return self._conn.query

    @property
    def origin(self) -> str:
        """The Origin header; ``""`` if none."""
        return self._conn.origin

    @property
    def user_id(self) -> Optional[str]:
        """The authenticated user id; None without authentication."""
        return self._conn.user_id

    @property
    def claims(self) -> Optional[Dict[str, Any]]:
        """The verified JWT's claims as a dict; None without a JWT."""
        return self._conn.claims

    @property
    def closed(self) -> bool:
        """True once the close event was delivered."""
        return self._conn.closed

    async def send(self, message: Message) -> None:
        """Queue a message (``str`` text, bytes-like binary) without blocking
        the loop. Raises like :meth:`wsgate.Connection.send`."""
        self._conn.send(message)
        await asyncio.sleep(0)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason`` after what is already queued."""
        self._conn.close(code, reason)
        await asyncio.sleep(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncConnection):
            return self._conn == other._conn
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._conn)

    def __repr__(self) -> str:
        return f"<wsgate.aio.AsyncConnection {self._conn.id}>"


class Event(NamedTuple):
    """One event from :meth:`AsyncServer.events`."""

    kind: str
    """``"open"``, ``"message"`` or ``"close"``."""
    conn: AsyncConnection
    """The connection."""
    message: Optional[Message] = None
    """The message (``"message"`` events): ``str`` text or ``bytes`` binary."""
    code: Optional[int] = None
    """The close code (``"close"`` events)."""
    reason: Optional[str] = None
    """The close reason (``"close"`` events)."""


_END = object()


class _EventStream:
    """An async iterator over the server's events; ends when the server stops."""

    def __init__(self, owner: "AsyncServer") -> None:
        self._owner = owner
        self._queue: "asyncio.Queue[Any]" = asyncio.Queue()
        self._done = False

    def __aiter__(self) -> "_EventStream":
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._done = True
            self._owner._streams.discard(self)
            raise StopAsyncIteration
        return cast(Event, item)

    async def aclose(self) -> None:
        """Stop receiving events."""
        self._done = True
        self._owner._streams.discard(self)


class AsyncServer:
    """A :class:`wsgate.Server` whose events are delivered to an asyncio loop.

    Takes the same arguments as :class:`wsgate.Server`. The loop is the one
    running when :meth:`start` is awaited (``async with server:`` does it).
    """

    def __init__(self, host: Optional[str] = None, port: Optional[int] = None,
                 options: Optional[Mapping[str, OptionValue]] = None, *,
                 config: Optional[Config] = None, **kwargs: OptionValue) -> None:
        self._server = Server(host, port, options, config=config, **kwargs)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._conns: Dict[int, AsyncConnection] = {}
        self._streams: Set[_EventStream] = set()
        self._tasks: Set["asyncio.Future[Any]"] = set()
        self._stopped: Optional[asyncio.Event] = None
        self._on_open: Optional[Callable[..., Any]] = None
        self._on_message: Optional[Callable[..., Any]] = None
        self._on_close: Optional[Callable[..., Any]] = None
        # Service thread side: hand everything to the loop.
        self._server.on_open(self._thread_open)
        self._server.on_message(self._thread_message)
        self._server.on_close(self._thread_close)
        self._server._stop_hooks.append(self._thread_stopped)

    # ---------------------------------------------------------------- handlers

    def on_open(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(conn)``, a function or coroutine function."""
        self._on_open = handler
        return handler

    def on_message(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(conn, message)``, a function or coroutine function."""
        self._on_message = handler
        return handler

    def on_close(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(conn, code, reason)``, a function or coroutine function."""
        self._on_close = handler
        return handler

    def on_auth(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(request)`` authenticates upgrade requests
        (``auth.mode`` ``callback`` or ``jwt+callback``), exactly as
        :meth:`wsgate.Server.on_auth`. Unlike the other handlers it is **not**
        run in the event loop: an auth decision is synchronous, made on the
        service thread before the upgrade completes, so the handler must be a
        plain function that decides at once and never blocks (touch loop
        objects only through ``loop.call_soon_threadsafe``). Coroutine
        functions raise TypeError."""
        if handler is not None and _is_async(handler):
            name = getattr(handler, "__qualname__", handler)
            raise TypeError(
                "AsyncServer.on_auth handlers must be synchronous: an auth decision is made on "
                "the service thread before the upgrade completes, not in the event loop; use a "
                f"plain def that does not block (got {name!r})")
        self._server.on_auth(handler)
        return handler

    def events(self) -> AsyncIterator[Event]:
        """An async iterator over every event from now on, in arrival order;
        it ends when the server stops::

            async for event in server.events():
                if event.kind == "message":
                    await event.conn.send(event.message)
        """
        stream = _EventStream(self)
        self._streams.add(stream)
        return stream

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen and serve (on the service thread), delivering events to the
        running loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopped = asyncio.Event()
        await loop.run_in_executor(None, self._server.start)

    async def stop(self) -> None:
        """Stop gracefully (in the default executor, so the loop keeps
        running and receives the close events). Idempotent."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._server.stop)
        # The close events were scheduled before the executor's result.
        self._finish()

    async def serve_forever(self) -> None:
        """Start if needed and wait until the server is stopped. When the
        awaiting task is cancelled (e.g. Ctrl-C under ``asyncio.run``), the
        server is stopped gracefully and the cancellation propagates. On
        SIGTERM (a plain ``kill``, ``docker stop``, systemd) the server is
        stopped gracefully and serve_forever returns normally; that holds
        when the loop runs in the main thread and the application has no
        SIGTERM handler of its own (the default disposition is restored on
        return)."""
        if not self._server.running:
            await self.start()
        assert self._stopped is not None
        remove = self._catch_sigterm(asyncio.get_running_loop())
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            await asyncio.shield(self.stop())
            raise
        finally:
            remove()

    def _catch_sigterm(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return lambda: None

        def on_sigterm() -> None:
            task = asyncio.ensure_future(self.stop())
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._task_done, what="SIGTERM stop"))

        try:
            loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        except (NotImplementedError, RuntimeError, ValueError):
            return lambda: None  # a loop without signal support

        def remove() -> None:
            loop.remove_signal_handler(signal.SIGTERM)  # back to SIG_DFL
        return remove

    async def __aenter__(self) -> "AsyncServer":
        if not self._server.running:
            await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ---------------------------------------------------------------- queries and sends

    @property
    def server(self) -> Server:
        """The underlying thread-based :class:`wsgate.Server`."""
        return self._server

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._server.port

    @property
    def running(self) -> bool:
        """True between start and the end of stop."""
        return self._server.running

    @property
    def options(self) -> Mapping[str, OptionValue]:
        """The options this server was created with."""
        return self._server.options

    @property
    def connection_count(self) -> int:
        """Number of open connections."""
        return self._server.connection_count

    def connections(self) -> List[AsyncConnection]:
        """The open connections whose open event reached the loop."""
        return list(self._conns.values())

    async def broadcast(self, message: Message) -> None:
        """Send one message to every open connection without blocking the loop."""
        self._server.broadcast(message)
        await asyncio.sleep(0)

    # ---------------------------------------------------------------- service thread side

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: nobody is listening any more

    def _thread_open(self, conn: Connection) -> None:
        self._post(self._deliver_open, conn)

    def _thread_message(self, conn: Connection, message: Message) -> None:
        self._post(self._deliver_message, conn, message)

    def _thread_close(self, conn: Connection, code: int, reason: str) -> None:
        self._post(self._deliver_close, conn, code, reason)

    def _thread_stopped(self) -> None:
        self._post(self._finish)

    # ---------------------------------------------------------------- loop side

    def _wrap(self, conn: Connection) -> AsyncConnection:
        aconn = self._conns.get(conn.id)
        if aconn is None or aconn._conn is not conn:
            aconn = AsyncConnection(conn)
        return aconn

    def _deliver_open(self, conn: Connection) -> None:
        aconn = AsyncConnection(conn)
        self._conns[conn.id] = aconn
        self._call(self._on_open, "on_open", aconn)
        self._publish(Event("open", aconn))

    def _deliver_message(self, conn: Connection, message: Message) -> None:
        aconn = self._wrap(conn)
        self._call(self._on_message, "on_message", aconn, message)
        self._publish(Event("message", aconn, message))

    def _deliver_close(self, conn: Connection, code: int, reason: str) -> None:
        aconn = self._wrap(conn)
        try:
            self._call(self._on_close, "on_close", aconn, code, reason)
            self._publish(Event("close", aconn, None, code, reason))
        finally:
            self._conns.pop(conn.id, None)

    def _publish(self, event: Event) -> None:
        for stream in list(self._streams):
            stream._queue.put_nowait(event)

    def _finish(self) -> None:
        if self._server.running:
            return  # restarted meanwhile
        if self._stopped is not None:
            self._stopped.set()
        streams = list(self._streams)
        self._streams.clear()
        for stream in streams:
            stream._queue.put_nowait(_END)

    def _call(self, handler: Optional[Callable[..., Any]], what: str, *args: Any) -> None:
        if handler is None:
            return
        try:
            result = handler(*args)
        except Exception:
            logger.exception("wsgate: exception in %s handler", what)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._task_done, what=what))

    def _task_done(self, task: "asyncio.Future[Any]", what: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("wsgate: exception in %s handler", what,
                         exc_info=(type(exc), exc, exc.__traceback__))
