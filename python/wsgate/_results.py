"""Presence entries and the answers of the asynchronous calls (presence,
session data, subscribe_from): what the glue hands over as ``(status,
message, payload)`` becomes a value or a :class:`~wsgate.WsgateError`."""

from __future__ import annotations

from typing import Any, Callable, List, NamedTuple, Optional, Tuple

from ._errors import Status, WsgateError, error_for
from ._history import Position

__all__ = ["Presence", "ResultCallback"]

#: ``callback(result, error)`` of the non-blocking forms: ``error`` is None
#: or the :class:`~wsgate.WsgateError` the call ended with.
ResultCallback = Callable[[Any, Optional[WsgateError]], Any]


class Presence(NamedTuple):
    """One connection that presence found (immutable).

    ``node`` is the number of the instance holding the connection: the top
    16 bits of ``conn`` (0 without a cluster, or for a connection opened
    before its instance got a node number). ``conn`` can be used on any
    instance as is (``server.send(p.conn, ...)``)."""

    conn: int
    """The connection id."""
    user_id: Optional[str]
    """Its authenticated user id; None when anonymous."""
    node: int
    """The node number of the instance that holds it."""
    since: float
    """Since when, as Unix time in seconds: the subscription (topic
    presence) or the upgrade (user presence)."""


def _presence(entries: List[Tuple[int, Optional[str], int]]) -> List[Presence]:
    return [Presence(conn, user_id, conn >> 48, since_ms / 1000.0) for conn, user_id, since_ms in entries]


def outcome(kind: str, answer: Tuple[int, str, Any]) -> Tuple[Any, Optional[WsgateError]]:
    """``(result, error)`` of an answer. ``kind`` is ``"presence"`` (a list
    of :class:`Presence`, also beside a :class:`~wsgate.ClusterError`:
    this instance's own entries), ``"value"`` (bytes, None when the key is
    absent or expired), ``"position"`` (a :class:`~wsgate.Position`) or
    ``"none"``."""
    status, message, payload = answer
    if kind == "presence":
        result: Any = _presence(payload)
    elif kind == "position":
        result = Position._of(*payload) if payload is not None else None
    else:
        result = payload
    if status == Status.OK:
        return result, None
    if kind == "value" and status == Status.ENOTFOUND:
        return None, None  # no such key: not an error for a get
    error = error_for(status, message)
    if kind == "presence":
        # What the instance knows by itself, for callers that can use it.
        error.presence = result  # type: ignore[attr-defined]
        return result, error
    return None, error


def value_or_raise(kind: str, answer: Tuple[int, str, Any]) -> Any:
    """The blocking forms: the result, or the error raised."""
    result, error = outcome(kind, answer)
    if error is not None:
        raise error
    return result
