"""History and recovery: :class:`Position` (a message's place in a topic's
history) and :class:`HistoryMessage` (what the ``on_history`` hook shapes)."""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

from . import _core
from ._errors import InvalidArgumentError, Status

__all__ = ["Position", "HistoryMessage"]

_U64 = 1 << 64


class Position:
    """A message's place in a topic's history (``wsg_position``), immutable.

    ``epoch`` names the history (it changes when the history is lost: Redis
    restarted empty, or ``cluster.history_ttl_ms`` passed without a
    publish) and ``offset`` counts its messages 1, 2, 3... ``Position(0, 0)``
    is "none": before the first message (and what the hook sees for a
    message published while Redis is down).

    ``str(pos)`` is the core's text ``"EPOCH-OFFSET"`` (``wsg_position_format``),
    what a client sends back, e.g. in its query string;
    :meth:`parse` reads it. Positions compare equal by both fields and can
    be dict keys; they have no order (offsets of two epochs do not compare)."""

    __slots__ = ("_epoch", "_offset")
    _epoch: int
    _offset: int

    def __init__(self, epoch: int, offset: int) -> None:
        for name, value in (("epoch", epoch), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"a position's {name} must be an int, not {type(value).__name__}")
            if not 0 <= value < _U64:
                raise InvalidArgumentError(f"a position's {name} must be in 0..2**64-1, not {value}",
                                           Status.EINVAL)
        if (epoch == 0) != (offset == 0):
            # What the core's text form allows: 0-0 or both counted from 1.
            raise InvalidArgumentError(
                f"position {epoch}-{offset}: epoch and offset are both 0 (before the first "
                "message) or both at least 1", Status.EINVAL)
        object.__setattr__(self, "_epoch", epoch)
        object.__setattr__(self, "_offset", offset)

    @classmethod
    def _of(cls, epoch: int, offset: int) -> "Position":
        """A position the core gave (already valid): no checks."""
        pos = object.__new__(cls)
        object.__setattr__(pos, "_epoch", epoch)
        object.__setattr__(pos, "_offset", offset)
        return pos

    @classmethod
    def parse(cls, text: str) -> "Position":
        """The position written as ``"EPOCH-OFFSET"`` in decimal (the text of
        ``str(pos)``, e.g. from a client's query string). Raises
        :class:`~wsgate.InvalidArgumentError` (a ValueError) with the core's
        message for any other text, TypeError when ``text`` is not a str."""
        if not isinstance(text, str):
            raise TypeError(f"a position's text must be str, not {type(text).__name__}")
        epoch, offset = _core.position_parse(text)
        return cls._of(epoch, offset)

    @property
    def epoch(self) -> int:
        """The history's identity (0 for "none")."""
        return self._epoch

    @property
    def offset(self) -> int:
        """The message's number within the epoch, from 1 (0 for "none")."""
        return self._offset

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("wsgate.Position is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("wsgate.Position is immutable")

    def __str__(self) -> str:
        return _core.position_format(self._epoch, self._offset)

    def __repr__(self) -> str:
        return f"wsgate.Position(epoch={self._epoch}, offset={self._offset})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return self._epoch == other._epoch and self._offset == other._offset

    def __hash__(self) -> int:
        return hash((self._epoch, self._offset))

    def __reduce__(self) -> Tuple[Any, ...]:
        return (Position, (self._epoch, self._offset))


def position_arg(from_: Union[None, Position, str]) -> Optional[Tuple[int, int]]:
    """subscribe_from's ``from_`` as the glue takes it."""
    if from_ is None:
        return None
    if isinstance(from_, Position):
        return (from_.epoch, from_.offset)
    if isinstance(from_, str):
        pos = Position.parse(from_)
        return (pos.epoch, pos.offset)
    raise TypeError("from_ must be None, a wsgate.Position or its text 'EPOCH-OFFSET', not "
                    f"{type(from_).__name__}")


class HistoryMessage:
    """One message of a history topic on its way to this instance's
    subscribers, as the ``on_history`` hook sees it
    (:meth:`wsgate.Server.on_history`).

    Valid only during the hook's call that received it, on the service
    thread: kept and used later (or from another thread), every attribute
    and :meth:`set` raise :class:`~wsgate.StateError`; :attr:`valid` says
    whether it still is."""

    __slots__ = ("_native",)

    def __init__(self, native: _core.HistoryMessage) -> None:
        self._native = native

    @property
    def valid(self) -> bool:
        """False once the hook's call has returned."""
        return self._native.valid

    @property
    def type(self) -> str:
        """``"text"`` or ``"binary"``."""
        return self._native.type

    @property
    def payload(self) -> Union[str, bytes]:
        """The payload as published (:meth:`set` does not change it): ``str``
        for text, ``bytes`` for binary, as :meth:`wsgate.Server.on_message`
        receives messages."""
        return self._native.payload

    def set(self, data: Union[str, bytes, bytearray, memoryview]) -> None:
        """Replace what the subscribers get (copied), e.g. the payload with
        its position embedded. The type stays: a text message takes ``str``,
        a binary one bytes-like (TypeError otherwise).
        :class:`~wsgate.InvalidArgumentError` when it is larger than a send
        queue can hold (``limits.max_queue_bytes``)."""
        self._native.set(data)

    def __repr__(self) -> str:
        if not self._native.valid:
            return "<wsgate.HistoryMessage (no longer valid)>"
        return f"<wsgate.HistoryMessage {self._native.type}>"
