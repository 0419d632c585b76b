"""The exception hierarchy: one class per ``wsg_status`` of the C ABI."""

from __future__ import annotations

import enum
from typing import Any, Dict, Optional, Tuple, Type, Union

from . import _core

__all__ = [
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


class Status(enum.IntEnum):
    """The C ABI's ``wsg_status`` values (stable; the core only appends)."""

    OK = 0
    EINVAL = 1
    ENOTFOUND = 2
    ECLOSED = 3
    ENOMEM = 4
    ESTATE = 5
    EIO = 6
    ETLS = 7
    EBUSY = 8
    ELIMIT = 9
    EINTERNAL = 10
    ECLUSTER = 11
    ETIMEOUT = 12
    EGONE = 13


class WsgateError(Exception):
    """Base class of every error the wsgate core reports.

    ``status`` is the ``wsg_status`` (a :class:`Status` when this version
    knows the value, else the raw int), ``message`` the core's detail text
    (``wsg_last_error()``), which names the option, connection or system
    call involved."""

    #: The status this class stands for (None on the base class).
    STATUS: Optional[Status] = None

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        if status is None:
            status = self.STATUS if self.STATUS is not None else Status.EINTERNAL
        try:
            status = Status(status)
        except ValueError:
            pass
        self.status: Union[Status, int] = status
        self.message: str = message

    @property
    def status_name(self) -> str:
        """The stable name of the status, e.g. ``"WSG_EINVAL"``."""
        return _core.status_str(int(self.status))

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status_name})"

    def __reduce__(self) -> Tuple[Any, ...]:  # pickling with the two-argument __init__
        return (type(self), (self.message, int(self.status)))


class InvalidArgumentError(WsgateError, ValueError):
    """``WSG_EINVAL``: invalid argument, unknown option or value out of range."""

    STATUS = Status.EINVAL


class NotFoundError(WsgateError, LookupError):
    """``WSG_ENOTFOUND``: no such connection (stale or unknown id) or item."""

    STATUS = Status.ENOTFOUND


class ClosedError(WsgateError):
    """``WSG_ECLOSED``: the connection is closing or closed."""

    STATUS = Status.ECLOSED


class NoMemoryError(WsgateError, MemoryError):
    """``WSG_ENOMEM``: the core ran out of memory."""

    STATUS = Status.ENOMEM


class StateError(WsgateError, RuntimeError):
    """``WSG_ESTATE``: not allowed in the server's current state (e.g. not
    listening, already running)."""

    STATUS = Status.ESTATE


class NetworkError(WsgateError, OSError):
    """``WSG_EIO``: a system or network error (bind, socket, thread)."""

    STATUS = Status.EIO


class TLSError(WsgateError):
    """``WSG_ETLS``: TLS setup or certificate error."""

    STATUS = Status.ETLS


class BusyError(WsgateError, RuntimeError):
    """``WSG_EBUSY``: not allowed on the service thread (inside a callback)."""

    STATUS = Status.EBUSY


class LimitError(WsgateError):
    """``WSG_ELIMIT``: a configured limit was reached."""

    STATUS = Status.ELIMIT


class InternalError(WsgateError):
    """``WSG_EINTERNAL``: a broken invariant inside the core (please report it)."""

    STATUS = Status.EINTERNAL


class ClusterError(WsgateError, ConnectionError):
    """``WSG_ECLUSTER``: the cluster is down (Redis unreachable, hung or
    refusing the password) and a cross-instance call could not be handed to
    the other instances; the message says why."""

    STATUS = Status.ECLUSTER


class TimedOutError(WsgateError, TimeoutError):
    """``WSG_ETIMEOUT``: gave up waiting; the deadline passed before the
    result came (the call goes on: its answer may still come)."""

    STATUS = Status.ETIMEOUT


class GoneError(WsgateError, LookupError):
    """``WSG_EGONE``: the position is no longer in the topic's history
    (trimmed, expired, or of another epoch): nothing was replayed, the
    application resyncs its client its own way."""

    STATUS = Status.EGONE


_BY_STATUS: Dict[Optional[int], Type[WsgateError]] = {
    int(cls.STATUS): cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        ClosedError,
        NoMemoryError,
        StateError,
        NetworkError,
        TLSError,
        BusyError,
        LimitError,
        InternalError,
        ClusterError,
        TimedOutError,
        GoneError,
    )
    if cls.STATUS is not None
}
# Statuses a newer core may add map to the base class.
_BY_STATUS[None] = WsgateError
_core._set_error_classes(_BY_STATUS)


def error_for(status: int, message: str) -> WsgateError:
    """The exception for a status the core answered with (a newer core's
    unknown status gets the base class)."""
    cls = _BY_STATUS.get(int(status), WsgateError)
    return cls(message, int(status))
