"""asyncio layer: receive wsgate events in your own event loop.

The server still runs on its own service thread; every event (open, message,
close) is handed to the loop with ``loop.call_soon_threadsafe``, in arrival
order. Handlers may be plain functions (called in the loop, in order) or
coroutine functions (each call becomes a task, so slow handlers do not hold
up the others; use :meth:`AsyncServer.events` when strict per-event order
matters for async code). Sends are awaitable and never block the loop: the
core copies the data and queues it without waiting for the network. A send to
a connection that is *behind* (its send queue above
``limits.queue_high_water_bytes`` because the client reads slower than it is
fed) waits until the client has caught up (``on_drain``), so a producer loop
is paced by its reader and no message is lost to a queue policy. Start and
stop run in the loop's default executor. Presence and session data
(:meth:`AsyncServer.topic_presence`, ``user_presence``, ``session_set``,
``session_get``, ``session_delete``) and :meth:`AsyncServer.subscribe_from`
are awaitables: the core answers on the service thread, which hands the
answer to the loop.

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
from collections import deque
from typing import (Any, AsyncIterator, Callable, Deque, Dict, List, Mapping, NamedTuple, Optional, Set,
                    Tuple, TypeVar, Union, cast)

from ._config import Config, OptionValue
from ._errors import Status, TimedOutError, WsgateError
from ._history import Position
from ._results import Presence
from ._server import Connection, Message, Server, _is_async, _timeout_ms

__all__ = ["AsyncServer", "AsyncConnection", "Event"]

logger = logging.getLogger("wsgate")
_H = TypeVar("_H", bound=Callable[..., Any])


class AsyncConnection:
    """The asyncio view of a :class:`wsgate.Connection`: the same facts,
    with awaitable :meth:`send` and :meth:`close`. Other attributes of the
    underlying connection (counters, ``set_timeout``...) are reachable too."""

    __slots__ = ("_conn", "_owner", "__weakref__")

    def __init__(self, conn: Connection, owner: Optional["AsyncServer"] = None) -> None:
        self._conn = conn
        self._owner = owner

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

    @property
    def queue_policy(self) -> str:
        """Read and set the connection's queue policy by name, as
        :attr:`wsgate.Connection.queue_policy`."""
        return self._conn.queue_policy

    @queue_policy.setter
    def queue_policy(self, name: str) -> None:
        self._conn.queue_policy = name

    async def send(self, message: Message) -> None:
        """Queue a message (``str`` text, bytes-like binary) without blocking
        the loop. Raises like :meth:`wsgate.Connection.send`.

        Applies backpressure: while the connection is behind (its send queue,
        counting the sends the core has not taken in yet, is above the
        server's ``limits.queue_high_water_bytes``), the call waits without
        blocking the loop until the client has caught up (the core's
        ``on_drain``; a recheck every 50 ms also ends the wait once the queue
        is no longer above the mark), then sends. Waiting sends go out in
        the order they began to wait, and a producer never gets ahead of its
        reader by more than the high-water mark plus one message. When the
        connection closes meanwhile, the send raises what a send to a closed
        connection raises (ClosedError or NotFoundError). Sends to a
        connection that is not behind complete at once."""
        owner = self._owner
        pacer = owner._pacer_for(self._conn) if owner is not None else None
        if pacer is None:
            self._conn.send(message)
            await asyncio.sleep(0)
            return
        size = _framed_size(message)
        await pacer.turn(size)
        try:
            self._conn.send(message)
        except BaseException:
            pacer.cancelled_turn(size)
            raise
        pacer.sent(size)
        await asyncio.sleep(0)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason`` after what is already queued.
        Sends waiting for this connection to catch up raise at once."""
        self._conn.close(code, reason)
        owner = self._owner
        if owner is not None:
            owner._closing(self._conn.id)
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


def _framed_size(message: Message) -> int:
    """Bytes a message takes in a send queue, at most: its payload and the
    largest frame header (what permessage-deflate saves is not counted)."""
    if isinstance(message, str):
        n = len(message) if message.isascii() else len(message.encode("utf-8", "surrogateescape"))
    else:
        try:
            n = memoryview(message).nbytes
        except TypeError:
            n = 0  # the send itself raises TypeError
    return n + 14


class _Waiter:
    __slots__ = ("future", "size")

    def __init__(self, future: "asyncio.Future[None]", size: int) -> None:
        self.future = future
        self.size = size


class _Pacer:
    """Backpressure for the async sends to one connection (loop thread only).

    The core's queue size (``WSG_INFO_QUEUED_BYTES``) lags the sends made
    from here: a send reaches the queue when the service thread takes it from
    its mailbox. So the estimate adds the sends the core has not counted yet
    (known by ``messages_out``, which counts every message handed to the
    queue) and the turns granted whose send has not happened yet.

    Above the high-water mark the connection is behind: sends wait, in
    order, until the core's ``on_drain`` for it, or until a recheck (every
    ``RECHECK`` seconds while someone waits) finds the estimate no longer
    above the mark. The core reports no drain when the queue was only
    briefly that full (a burst the socket then took, or sends still on
    their way when counted) or when a close emptied it; the recheck covers
    those. A close releases every waiter; its send then raises the core's
    error."""

    RECHECK = 0.05

    def __init__(self, conn: Connection, high: int) -> None:
        self._conn = conn
        self._high = high
        self._waiters: Deque[_Waiter] = deque()
        self._unseen: Deque[int] = deque()  # sizes of sends the core may not have counted
        self._unseen_bytes = 0
        self._sent = 0  # sends since _base was read
        self._base: Optional[int] = None  # messages_out when _sent was 0
        self._reserved = 0  # turns granted, send not made yet
        self._closed = False
        self._timer: Optional[asyncio.TimerHandle] = None

    @property
    def waiting(self) -> int:
        """Sends waiting for their turn."""
        return len(self._waiters)

    def _estimate(self) -> Optional[int]:
        """Bytes queued and on their way; None once the connection is gone."""
        try:
            queued, out = self._conn._native().queue_state(self._conn.id)
        except WsgateError:
            return None
        if self._base is None:
            self._base = out - self._sent
        pending = self._sent - (out - self._base)
        if pending <= 0:
            # Everything sent from here is counted (messages sent by other
            # means may have been counted instead: the estimate errs low by
            # those, never for long). Start afresh.
            self._unseen.clear()
            self._unseen_bytes = 0
            self._sent = 0
            self._base = out
        while len(self._unseen) > pending:
            self._unseen_bytes -= self._unseen.popleft()
        return queued + self._unseen_bytes + self._reserved

    def _may_send(self) -> bool:
        """Not behind (or gone: the send then raises)."""
        estimate = self._estimate()
        if estimate is None:
            self._closed = True
            return True
        return estimate <= self._high

    async def turn(self, size: int) -> None:
        """Returns when a message of ``size`` bytes may be sent, holding a
        turn that :meth:`sent` or :meth:`cancelled_turn` ends."""
        if self._closed or (not self._waiters and self._may_send()):
            self._reserved += size
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), size)
        self._waiters.append(waiter)
        self._arm()
        try:
            await waiter.future
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self.cancelled_turn(size)  # granted, then cancelled: pass it on
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
                if not self._waiters:
                    self._disarm()
            raise

    def sent(self, size: int) -> None:
        self._reserved -= size
        self._sent += 1
        self._unseen.append(size)
        self._unseen_bytes += size

    def cancelled_turn(self, size: int) -> None:
        self._reserved -= size
        self._grant()

    def drained(self) -> None:
        """The core's on_drain: the client caught up."""
        self._grant()

    def close(self) -> None:
        """The connection is closing or gone: every waiter goes (and fails)."""
        self._closed = True
        self._grant()

    def _grant(self) -> None:
        while self._waiters:
            if not self._closed and not self._may_send():
                break
            waiter = self._waiters.popleft()
            if waiter.future.done():
                continue
            self._reserved += waiter.size
            waiter.future.set_result(None)
        if not self._waiters:
            self._disarm()

    def _recheck(self) -> None:
        self._timer = None
        self._grant()
        self._arm()

    def _arm(self) -> None:
        if self._timer is None and self._waiters:
            self._timer = asyncio.get_running_loop().call_later(self.RECHECK, self._recheck)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


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
        self._on_drain: Optional[Callable[..., Any]] = None
        self._pacers: Dict[int, _Pacer] = {}
        # Service thread side: hand everything to the loop.
        self._server.on_open(self._thread_open)
        self._server.on_message(self._thread_message)
        self._server.on_close(self._thread_close)
        self._server.on_drain(self._thread_drain)
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

    def on_drain(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(conn, queued_bytes)``, a function or coroutine
        function, runs in the loop when a connection that was behind caught
        up (see :meth:`wsgate.Server.on_drain`). Sends waiting in
        :meth:`AsyncConnection.send` are resumed first, in any case. (Do not
        set ``server.server.on_drain``: this layer needs it.)"""
        self._on_drain = handler
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

    def on_history(self, handler: Optional[_H]) -> Optional[_H]:
        """Decorator: ``handler(topic, pos, msg)`` shapes each history
        message, exactly as :meth:`wsgate.Server.on_history` (only before
        the server starts). Like :meth:`on_auth` it is **not** run in the
        event loop: it runs on the service thread for every message before
        its subscribers get it, so it must be a quick plain function (no
        I/O, no loop objects). Coroutine functions raise TypeError."""
        self._server.on_history(handler)
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

    def metrics(self) -> str:
        """The Prometheus text exposition (:meth:`wsgate.Server.metrics`)."""
        return self._server.metrics()

    @property
    def ready(self) -> bool:
        """True while the server accepts upgrades (:attr:`wsgate.Server.ready`)."""
        return self._server.ready

    def connections(self) -> List[AsyncConnection]:
        """The open connections whose open event reached the loop."""
        return list(self._conns.values())

    async def broadcast(self, message: Message) -> None:
        """Send one message to every open connection without blocking the loop."""
        self._server.broadcast(message)
        await asyncio.sleep(0)

    # ---------------------------------------------------------------- presence and session data

    async def topic_presence(self, topic: str, *, timeout: Optional[float] = None) -> List[Presence]:
        """Every connection subscribed to ``topic`` on every instance, as
        :meth:`wsgate.Server.topic_presence`, awaited without blocking the
        loop (the core's answer is handed to it with
        ``loop.call_soon_threadsafe``). ``timeout`` seconds: then
        :class:`wsgate.TimedOutError`. Raises what the blocking form raises
        (ClusterError with this instance's entries in ``presence``...); it
        can be awaited from handlers too."""
        return cast(List[Presence], await self._answer(
            lambda done: self._server.topic_presence(topic, callback=done), timeout, "topic_presence"))

    async def user_presence(self, user_id: str, *, timeout: Optional[float] = None) -> List[Presence]:
        """Every open connection of ``user_id`` on every instance
        (:meth:`wsgate.Server.user_presence`), awaited like
        :meth:`topic_presence`."""
        return cast(List[Presence], await self._answer(
            lambda done: self._server.user_presence(user_id, callback=done), timeout, "user_presence"))

    async def session_set(self, key: str, value: Union[str, bytes, bytearray, memoryview],
                          ttl: Optional[float] = None, *, timeout: Optional[float] = None) -> None:
        """Store session data (:meth:`wsgate.Server.session_set`), awaited
        like :meth:`topic_presence`."""
        await self._answer(lambda done: self._server.session_set(key, value, ttl, callback=done),
                           timeout, "session_set")

    async def session_get(self, key: str, *, timeout: Optional[float] = None) -> Optional[bytes]:
        """The session value under ``key`` or None
        (:meth:`wsgate.Server.session_get`), awaited like
        :meth:`topic_presence`."""
        return cast(Optional[bytes], await self._answer(
            lambda done: self._server.session_get(key, callback=done), timeout, "session_get"))

    async def session_delete(self, key: str, *, timeout: Optional[float] = None) -> None:
        """Remove session data (:meth:`wsgate.Server.session_delete`),
        awaited like :meth:`topic_presence`."""
        await self._answer(lambda done: self._server.session_delete(key, callback=done),
                           timeout, "session_delete")

    # ---------------------------------------------------------------- history

    async def subscribe_from(self, conn: Union[AsyncConnection, Connection, int], topic: str,
                             from_: Union[None, Position, str] = None, *,
                             timeout: Optional[float] = None) -> Position:
        """Subscribe ``conn`` to a history topic from ``from_`` and give it
        what it missed, then the live messages
        (:meth:`wsgate.Server.subscribe_from`), awaited without blocking the
        loop; returns the :class:`wsgate.Position` reached. Raises what the
        blocking form raises (:class:`wsgate.GoneError` when ``from_`` is no
        longer in the history: the connection is subscribed all the same,
        to the live messages). Can be awaited from handlers."""
        conn_id = conn.id if isinstance(conn, (AsyncConnection, Connection)) else conn
        return cast(Position, await self._answer(
            lambda done: self._server.subscribe_from(conn_id, topic, from_, callback=done), timeout,
            "subscribe_from"))

    async def _answer(self, start: Callable[[Callable[[Any, Optional[WsgateError]], None]], None],
                      timeout: Optional[float], what: str) -> Any:
        """Makes a call in its callback form and awaits its answer: the
        callback runs on the service thread and only hands the outcome to
        this loop. A call the core refuses raises here at once."""
        wait_ms = _timeout_ms(timeout)  # checks it
        loop = asyncio.get_running_loop()
        future: "asyncio.Future[Any]" = loop.create_future()

        def settle(result: Any, error: Optional[WsgateError]) -> None:
            if future.done():
                return  # timed out or cancelled meanwhile: the answer is dropped
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def done(result: Any, error: Optional[WsgateError]) -> None:  # service thread
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

        start(done)
        if wait_ms < 0:
            return await future
        try:
            return await asyncio.wait_for(future, wait_ms / 1000)
        except asyncio.TimeoutError:
            raise TimedOutError(f"{what}: no answer within {wait_ms} ms (the call goes on; its answer "
                                "will be discarded)", Status.ETIMEOUT) from None

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

    def _thread_drain(self, conn: Connection, queued_bytes: int) -> None:
        self._post(self._deliver_drain, conn, queued_bytes)

    def _thread_stopped(self) -> None:
        self._post(self._finish)

    # ---------------------------------------------------------------- loop side

    def _wrap(self, conn: Connection) -> AsyncConnection:
        aconn = self._conns.get(conn.id)
        if aconn is None or aconn._conn is not conn:
            aconn = AsyncConnection(conn, self)
        return aconn

    def _pacer_for(self, conn: Connection) -> Optional[_Pacer]:
        """The connection's pacer (made on its first send); None once it is
        closed or the server is not running (the send then raises, or goes
        out unpaced)."""
        pacer = self._pacers.get(conn.id)
        if pacer is None and not conn.closed and self._server.running:
            pacer = self._pacers[conn.id] = _Pacer(conn, self._server._high_water_bytes())
        return pacer

    def _closing(self, conn_id: int) -> None:
        pacer = self._pacers.get(conn_id)
        if pacer is not None:
            pacer.close()

    def _deliver_drain(self, conn: Connection, queued_bytes: int) -> None:
        pacer = self._pacers.get(conn.id)
        if pacer is not None:
            pacer.drained()
        self._call(self._on_drain, "on_drain", self._wrap(conn), queued_bytes)

    def _deliver_open(self, conn: Connection) -> None:
        aconn = AsyncConnection(conn, self)
        self._conns[conn.id] = aconn
        self._call(self._on_open, "on_open", aconn)
        self._publish(Event("open", aconn))

    def _deliver_message(self, conn: Connection, message: Message) -> None:
        aconn = self._wrap(conn)
        self._call(self._on_message, "on_message", aconn, message)
        self._publish(Event("message", aconn, message))

    def _deliver_close(self, conn: Connection, code: int, reason: str) -> None:
        aconn = self._wrap(conn)
        pacer = self._pacers.pop(conn.id, None)
        if pacer is not None:
            pacer.close()
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
        pacers = list(self._pacers.values())
        self._pacers.clear()
        for pacer in pacers:
            pacer.close()
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
