"""API tokens shared by the three services: read-only and read-write, on by default off loopback.

A request carries ``Authorization: Bearer <token>`` (or ``Token <token>``, the scheme of NeuroIO's
clients). Without a valid token the answer is 401; a
read-only token on a write (any method but GET, HEAD, OPTIONS) is 403. ``required: auto`` turns the
check on exactly when the service binds to a non-loopback address; a service that must check and
has no token configured refuses to start. Tokens are compared in constant time and never logged.
"""
from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, SecretStr

from sfapi.configfile import StrictModel

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz"})


class TokenConfig(StrictModel):
    token: SecretStr = Field(description="the secret; at least 16 characters")
    role: Literal["read", "write"] = "read"
    name: str = ""  # who holds it (shown in logs instead of the token)


class AuthConfig(StrictModel):
    """``auth`` section of every service's config."""

    required: Literal["auto", "always", "never"] = "auto"
    tokens: list[TokenConfig] = []


class AuthError(Exception):
    """Refused: ``status`` is 401 (no or unknown token) or 403 (read-only token on a write)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = "UNAUTHORIZED" if status == 401 else "FORBIDDEN"


class AuthSetupError(Exception):
    """The service must check tokens but none is configured."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Authenticator:
    enabled: bool
    tokens: tuple[tuple[bytes, str, str], ...]  # (secret, role, name)
    #: only writes are checked (reads are open): ``guard_writes`` on loopback with tokens configured
    writes_only: bool = False

    @classmethod
    def from_config(cls, cfg: AuthConfig, host: str, service: str, *,
                    guard_writes: bool = False) -> "Authenticator":
        """The check of ``service`` bound to ``host``. With ``guard_writes`` (facerouter, the video
        worker), ``required: auto`` on loopback still checks writes when any token is configured."""
        enabled = cfg.required == "always" or (cfg.required == "auto" and not is_loopback(host))
        tokens = tuple((t.token.get_secret_value().encode(), t.role, t.name or f"token{i}")
                       for i, t in enumerate(cfg.tokens))
        writes_only = False
        if not enabled and guard_writes and cfg.required == "auto" and tokens:
            enabled = writes_only = True
        if enabled and not tokens:
            why = "auth.required is always" if cfg.required == "always" else f"it binds to {host}, not loopback"
            raise AuthSetupError(f"{service} must check API tokens ({why}) but auth.tokens is empty; "
                                 "add tokens or set auth.required: never")
        for secret, _, name in tokens:
            if len(secret) < 16:
                raise AuthSetupError(f"{service}: auth token {name!r} is shorter than 16 characters")
        return cls(enabled, tokens, writes_only)

    def check(self, method: str, path: str, authorization: str | None) -> str | None:
        """The token holder's name, or None when auth is off; raises AuthError when refused."""
        if not self.enabled or path in OPEN_PATHS:
            return None
        if self.writes_only and method.upper() in READ_METHODS:
            return None
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme not in ("Bearer", "Token") or not credentials.strip():
            raise AuthError(401, "missing API token: send Authorization: Bearer <token>")
        given = credentials.strip().encode()
        for secret, role, name in self.tokens:
            if hmac.compare_digest(secret, given):
                if role == "read" and method.upper() not in READ_METHODS:
                    raise AuthError(403, f"token {name!r} is read-only; {method} needs a read-write token")
                return name
        raise AuthError(401, "unknown API token")


def bearer(token: str | None) -> dict[str, str]:
    """Headers a client sends with ``token`` (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}
