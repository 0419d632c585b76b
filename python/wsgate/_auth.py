"""AuthRequest: the upgrade request an ``on_auth`` handler decides on."""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

from . import _core as _native

__all__ = ["AuthRequest"]


class AuthRequest:
    """An upgrade request being authenticated (``auth.mode`` ``callback`` or
    ``jwt+callback``), handed to the :meth:`Server.on_auth
    <wsgate.Server.on_auth>` handler.

    It is valid **only during the handler call that received it**, on the
    service thread: once the handler returns (or from another thread), every
    property and method raises :class:`~wsgate.StateError`. Read what you
    need during the call.

    The handler decides with :meth:`accept` or :meth:`refuse` (the last call
    wins), or by its return value, which is a decision made after them: a
    non-empty ``str`` accepts as that user id, ``True`` accepts, ``False``
    or ``""`` refuses with 401; ``None`` leaves the decision to the calls
    made (no call at all refuses with 401).
    """

    __slots__ = ("_req",)

    def __init__(self, native: _native.AuthRequest) -> None:
        self._req = native

    # ---------------------------------------------------------------- fields

    @property
    def valid(self) -> bool:
        """True during the handler call; False once it has returned."""
        return self._req.valid

    @property
    def path(self) -> str:
        """The request path without the query."""
        return self._req.get(_native.AUTH_PATH)

    @property
    def query(self) -> str:
        """The query string as sent (percent-encoded, without ``?``), with
        ``access_token`` removed; ``""`` if none."""
        return self._req.get(_native.AUTH_QUERY)

    @property
    def peer_address(self) -> str:
        """The peer's IP address (``"127.0.0.1"``, ``"::1"``)."""
        return self._req.get(_native.AUTH_PEER_ADDR)

    @property
    def peer(self) -> str:
        """The peer's IP address (same as :attr:`peer_address`; the port is
        not part of an auth request)."""
        return self._req.get(_native.AUTH_PEER_ADDR)

    @property
    def origin(self) -> str:
        """The Origin header; ``""`` if none."""
        return self._req.get(_native.AUTH_ORIGIN)

    @property
    def tls_subject(self) -> str:
        """The verified client certificate's subject with mutual TLS; ``""``
        if none."""
        return self._req.get(_native.AUTH_TLS_SUBJECT)

    @property
    def token(self) -> str:
        """The token found in ``auth.token_sources`` (Authorization bearer,
        ``access_token`` query parameter, cookie or ``bearer.`` subprotocol);
        ``""`` if none."""
        return self._req.get(_native.AUTH_TOKEN)

    @property
    def jwt_user(self) -> Optional[str]:
        """With ``auth.mode=jwt+callback``: the verified JWT's user id
        (``auth.jwt.user_claim``); None without a verified JWT."""
        return self._req.get(_native.AUTH_JWT_USER) or None

    @property
    def jwt_claims(self) -> Optional[Dict[str, Any]]:
        """With ``auth.mode=jwt+callback``: the verified JWT's claims as a
        dict (a new one at every access); None without a verified JWT."""
        text = self._req.get(_native.AUTH_JWT_CLAIMS)
        return _parse_claims(text)

    def header(self, name: str) -> Optional[str]:
        """A request header by name (case-insensitive, without the colon);
        repeated headers are joined with ``", "``. None if absent."""
        return self._req.header(name)

    # ---------------------------------------------------------------- decisions

    def accept(self, user_id: Optional[str] = None,
               timeouts: Optional[Mapping[str, int]] = None) -> None:
        """Accept the request. ``user_id`` becomes the connection's
        :attr:`~wsgate.Connection.user_id` (None keeps the JWT's user id in
        ``jwt+callback`` mode, or none). ``timeouts`` maps heartbeat keys
        (as for :meth:`Connection.set_timeout
        <wsgate.Connection.set_timeout>`) to values applied to the
        connection when it opens; a bad key or value raises
        InvalidArgumentError."""
        if timeouts:
            for key, value in timeouts.items():
                self._req.set_timeout(key, value)
        self._req.accept(user_id)

    def refuse(self, status: int = 401, reason: str = "") -> None:
        """Refuse the request with HTTP ``status`` 401 (with
        ``WWW-Authenticate: Bearer``) or 403. ``reason`` is logged (event
        ``reject``); the client only sees a generic body."""
        self._req.refuse(status, reason)

    def set_timeout(self, key: str, value: int) -> None:
        """Give the connection about to open its own heartbeat value (same
        keys and ranges as :meth:`Connection.set_timeout
        <wsgate.Connection.set_timeout>`). Applied only if accepted."""
        self._req.set_timeout(key, value)

    def __repr__(self) -> str:
        if not self._req.valid:
            return "<wsgate.AuthRequest (no longer valid)>"
        try:
            return f"<wsgate.AuthRequest {self.peer_address} {self.path}>"
        except Exception:
            return "<wsgate.AuthRequest>"


def _parse_claims(text: Optional[str]) -> Optional[Dict[str, Any]]:
    """A JWT's claims (JSON object text from the core) as a dict; None for
    ``""`` or None."""
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def _decide(request: AuthRequest, result: Any) -> None:
    """Applies an ``on_auth`` handler's return value (see AuthRequest)."""
    if result is None:
        return
    if result is True:
        request.accept()
    elif result is False:
        request.refuse(401, "the on_auth handler returned False")
    elif isinstance(result, str):
        if result:
            request.accept(result)
        else:
            request.refuse(401, "the on_auth handler returned an empty user id")
    else:
        raise TypeError("an on_auth handler returns a user id (str), True (accept), "
                        f"False or None, not {type(result).__name__}")
