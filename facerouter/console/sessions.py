"""Console sessions: a login exchanges an API token for a session cookie.

The cookie holds a random session id only (never the token); it is ``HttpOnly``,
``SameSite=Strict``, ``Path=/`` and ``Secure`` when the request came over TLS. A session carries the
role of the token it was made from (``read`` sees, ``write`` changes) and a CSRF token the page
reads from ``GET /ui/api/session``. A request authenticated by the cookie that is not a read
(any method but GET, HEAD, OPTIONS, or a route listed as a read by POST) must also send
``X-CSRF-Token`` equal to the session's and an ``Origin`` equal to the page's own; anything else is
403. A request with an ``Authorization`` header is checked as an API call, cookie or not.
"""
from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import tornado.httputil

from facestack.core.auth import GRANTS, READ_METHODS, Authenticator, AuthError, canonical_role, digest

__all__ = ["Session", "SessionStore", "COOKIE", "CSRF_HEADER", "same_origin", "page_origin"]

COOKIE = "facerouter_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass
class Session:
    """One login: who (the token's name), what it may do (its role), its CSRF token, its end."""

    sid: str
    name: str
    role: str
    csrf: str
    expires: float


def page_origin(request: tornado.httputil.HTTPServerRequest, public: str | None = None) -> str:
    """The console's origin: ``public`` (``console.public_url``) or the address the request came to."""
    return public or f"{request.protocol}://{request.host}"


def same_origin(request: tornado.httputil.HTTPServerRequest, public: str | None = None) -> bool:
    """Whether the request's ``Origin`` is the console's own (scheme, host and port)."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    return hmac.compare_digest(origin.encode(), page_origin(request, public).encode())


class SessionStore:
    """Sessions in memory (a restart logs everyone out), the oldest dropped past ``limit``."""

    def __init__(self, ttl_s: float, limit: int, clock: Callable[[], float] = time.monotonic,
                 public_origin: str | None = None) -> None:
        self.ttl_s = ttl_s
        self.public_origin = public_origin
        self.limit = limit
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def login(self, authenticator: Authenticator, token: str) -> Session:
        """A new session for ``token``; raises :class:`AuthError` (401) for an unknown token."""
        given = digest(token.strip())
        found = None
        for tok in authenticator.known_tokens():  # every entry compared: no early exit to time
            if hmac.compare_digest(tok.sha256, given):
                found = tok
        if found is not None:
            if found.expires is not None and time.time() >= found.expires:
                raise AuthError(401, f"token {found.name!r} expired")
            role, name = canonical_role(found.role), found.name
        elif authenticator.enabled or not token.strip():
            raise AuthError(401, "unknown API token")
        else:
            role, name = "admin", "anonymous"   # tokens are not checked: anyone may change
        self._expire()
        while len(self._sessions) >= self.limit:
            self._sessions.popitem(last=False)
        sess = Session(secrets.token_urlsafe(32), name, role, secrets.token_urlsafe(32),
                       self.clock() + self.ttl_s)
        self._sessions[sess.sid] = sess
        return sess

    def logout(self, sid: str) -> None:
        """End a session (nothing if there is none)."""
        self._sessions.pop(sid, None)

    def get(self, sid: str | None) -> Session | None:
        """The live session of this id, or None."""
        if not sid:
            return None
        sess = self._sessions.get(sid)
        if sess is None:
            return None
        if sess.expires <= self.clock():
            del self._sessions[sid]
            return None
        return sess

    def from_request(self, request: tornado.httputil.HTTPServerRequest) -> Session | None:
        """The session whose cookie the request carries, or None."""
        morsel = request.cookies.get(COOKIE)
        return self.get(morsel.value if morsel is not None else None)

    def _expire(self) -> None:
        now = self.clock()
        for sid in [s.sid for s in self._sessions.values() if s.expires <= now]:
            del self._sessions[sid]

    def check(self, sess: Session, request: tornado.httputil.HTTPServerRequest, read: bool,
              need: str | None = None) -> None:
        """Refuse (:class:`AuthError` 403) a cookie-authenticated request that may not run:
        a change without the CSRF token or from another origin, or by a read-only session."""
        if read and (request.method or "GET").upper() in READ_METHODS:
            return
        given = request.headers.get(CSRF_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), sess.csrf.encode()):
            raise AuthError(403, f"a change from a console session needs the {CSRF_HEADER} header")
        if not same_origin(request, self.public_origin):
            raise AuthError(403, "a change from a console session must come from the console's "
                            "own origin (Origin header)")
        need = need or "admin"
        if not read and need not in GRANTS.get(sess.role, frozenset()):
            raise AuthError(403, f"{sess.name!r} is logged in with a {sess.role} token, read-only "
                            f"here: {request.method} {request.path} needs {need}")
