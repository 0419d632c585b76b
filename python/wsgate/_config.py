"""Options by the same dotted names as the C ABI, validated by the core."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, MutableMapping, NamedTuple, Optional, Union

from . import _core as _native
from ._errors import InvalidArgumentError, Status

__all__ = ["OptionInfo", "options", "Config", "OptionValue"]

#: What an option holds in Python: int for "int", bool for "bool", str for
#: "string" and "enum".
OptionValue = Union[int, bool, str]


class OptionInfo(NamedTuple):
    """One row of the core's option table (``wsg_option_describe``)."""

    name: str
    """Dotted name, e.g. ``"listen.port"``."""
    type: str
    """``"int"``, ``"bool"``, ``"string"`` or ``"enum"``."""
    default: str
    """Default value as text."""
    range: str
    """``"MIN..MAX"`` for int, ``"a|b|c"`` for enum, ``""`` otherwise."""
    doc: str
    """One line of documentation."""


def options() -> List[OptionInfo]:
    """Every option the loaded library knows, in table order.

    Read from the core at each call, so options added to the C library show
    up here without a binding change."""
    return [OptionInfo(*row) for row in _native.options()]


class Config(MutableMapping[str, OptionValue]):
    """A set of option values (``wsg_config``), every option at its default
    until set.

    A mutable mapping from dotted option names to typed values. Setting
    validates through the core: an unknown name or a bad value raises
    :class:`~wsgate.InvalidArgumentError` with the core's message (it names
    the option and the allowed range). Text values are parsed as the option's
    type (``config["listen.port"] = "8080"`` works, as ``--set`` does).
    Deleting an option resets it to its default. Not thread-safe.

    >>> cfg = Config({"listen.port": 0})
    >>> cfg["listen.port"]
    0
    """

    __slots__ = ("_core",)
    _core: _native.Config

    def __init__(self, values: Optional[Mapping[str, OptionValue]] = None, **kwargs: OptionValue) -> None:
        """Start from the defaults, then apply ``values`` and ``kwargs``
        (keyword names as in :class:`~wsgate.Server`, ``limits__max_connections=10``)."""
        if isinstance(values, Config):
            self._core = values._core.copy()
        else:
            self._core = _native.Config()
            if values:
                self.update(values)
        for key, value in kwargs.items():
            self[option_name(key)] = value

    def __getitem__(self, key: str) -> OptionValue:
        if key not in self:
            raise KeyError(key)
        return self._core.get(key)

    def __setitem__(self, key: str, value: OptionValue) -> None:
        if not isinstance(key, str):
            raise TypeError(f"option names are str, not {type(key).__name__}")
        self._core.set(key, value)

    def __delitem__(self, key: str) -> None:
        for info in options():
            if info.name == key:
                self._core.set_from_string(f"{key}={info.default}")
                return
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter([info.name for info in options()])

    def __len__(self) -> int:
        return len(_native.options())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _native.Config.option_type(key) != ""

    def set_from_string(self, assignment: str) -> None:
        """Set one option from ``"key=value"`` text (as ``--set`` does)."""
        self._core.set_from_string(assignment)

    def copy(self) -> "Config":
        """An independent copy."""
        return Config(self)

    def to_dict(self) -> Dict[str, OptionValue]:
        """Every option and its current value."""
        return {name: self[name] for name in self}

    def __repr__(self) -> str:
        defaults = Config()
        changed = {k: v for k, v in self.items() if defaults[k] != v}
        return f"wsgate.Config({changed!r})"


def option_name(keyword: str) -> str:
    """Maps a Python keyword to a dotted option name.

    ``section__name`` means ``section.name``; a bare name that is the last
    part of exactly one option (``max_connections``) means that option. A
    bare name that is the last part of several (``level``: ``log.level`` and
    ``compression.level``) raises :class:`~wsgate.InvalidArgumentError`
    naming them. Anything else is returned unchanged, so the core reports it
    as unknown (with the closest names). ``section_name`` with one underscore
    (``cluster_redis``) also means ``section.name`` when no option ends in
    that bare name."""
    if "__" in keyword:
        return keyword.replace("__", ".")
    names = [info.name for info in options()]
    matches = [name for name in names if name.rsplit(".", 1)[-1] == keyword]
    if len(matches) > 1:
        spelled = " or ".join(f"{m.replace('.', '__')}=..." for m in matches)
        raise InvalidArgumentError(
            f"keyword '{keyword}' is ambiguous: it names {' and '.join(matches)}; use "
            f"{spelled} (or the dotted name in options=)", Status.EINVAL)
    if not matches:
        matches = [name for name in names if name.replace(".", "_", 1) == keyword]
    return matches[0] if len(matches) == 1 else keyword
