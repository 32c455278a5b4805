"""API tokens shared by the three services: named, scoped by role, optionally expiring, kept hashed.

A request carries ``Authorization: Bearer <token>`` (or ``Token <token>``, the scheme of NeuroIO's
clients). Every route needs one role (each service's route table: :mod:`facestack.core.roles`, and the
``auth_roles`` of the router's handlers); a token's role grants:

=========== =================================================================================
``read``    reading (GET) anything but the audit log and the token list
``ingest``  posting frames to the router (a camera's or the video worker's token) and nothing else
``operator`` what ``read`` grants, plus enrolling and editing persons (and gallery faces)
``admin``   everything: sources, cameras (video worker jobs), galleries, tokens, deletion, audit
=========== =================================================================================

Today's config form stays: ``role: write`` is ``admin``. Without a valid token the answer is 401
(an expired token too); a token whose role does not grant the route's is 403. ``required: auto``
turns the check on exactly when the service binds to a non-loopback address; a service that must
check and has no token refuses to start. A config entry gives the secret (``token``) or only its
SHA-256 (``sha256``, what ``facestack token create`` prints); the router also accepts the tokens of
the persons database (``auth.database_tokens``). Tokens are hashed at start, compared in constant
time and never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from facestack.core.configfile import StrictModel
from facestack.core.errors import FacestackError

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz"})

#: the roles, and what each grants (a route needs one of these; ``open`` needs no token)
ROLES = ("read", "ingest", "operator", "admin")
GRANTS: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "ingest": frozenset({"ingest"}),
    "operator": frozenset({"read", "operator"}),
    "admin": frozenset({"read", "ingest", "operator", "admin"}),
}
#: today's config roles
ALIASES = {"write": "admin"}
RoleName = Literal["read", "ingest", "operator", "admin", "write"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def digest(secret: str | bytes) -> str:
    """The hex SHA-256 a token is stored as (tokens are random, so no salt is needed)."""
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).hexdigest()


def canonical_role(role: str) -> str:
    return ALIASES.get(role, role)


class TokenConfig(StrictModel):
    """One token: its secret (``token``) or the secret's SHA-256 (``sha256``), role, name, expiry."""

    token: SecretStr | None = Field(None, description="the secret; at least 16 characters")
    sha256: str | None = Field(None, description="hex SHA-256 of the secret, instead of the secret")
    role: RoleName = "read"
    name: str = ""  # who holds it (shown in logs and the audit log instead of the token)
    #: after this instant the token is refused (an ISO 8601 time; without a zone, UTC)
    expires: datetime | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not _HEX64.match(v.lower()):
            raise ValueError("sha256 must be 64 hex digits (facestack token create prints it)")
        return v.lower() if v else v

    @field_validator("expires")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=timezone.utc) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _one_secret(self) -> "TokenConfig":
        if (self.token is None) == (self.sha256 is None):
            raise ValueError("give exactly one of token (the secret) and sha256 (its hash)")
        return self


class AuthConfig(StrictModel):
    """``auth`` section of every service's config."""

    required: Literal["auto", "always", "never"] = "auto"
    tokens: list[TokenConfig] = []
    #: the router only: also accept the tokens of the persons plugin's database
    #: (``facestack token create``); they are re-read every ``database_refresh_s``
    database_tokens: bool = False
    database_refresh_s: float = Field(10.0, gt=0, le=3600)


class AuthError(FacestackError):
    """Refused: ``status`` is 401 (no, unknown or expired token) or 403 (the role does not grant it)."""

    def __init__(self, status: int, reason: str, who: "Principal | None" = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = "UNAUTHORIZED" if status == 401 else "FORBIDDEN"
        #: the token's holder when the token is known (expired, or its role is short)
        self.who = who


class AuthSetupError(FacestackError):
    """The service must check tokens but none is configured."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and role (``anonymous`` when auth is off)."""

    name: str
    role: str


ANONYMOUS = Principal("anonymous", "admin")


@dataclass(frozen=True)
class StoredToken:
    """A token as held in memory: the hash of its secret, its role, name and expiry (Unix s)."""

    sha256: str
    role: str
    name: str
    expires: float | None = None


def default_role(method: str) -> str:
    """The role a route without an entry in its table needs: ``read`` to read, ``admin`` to write."""
    return "read" if method.upper() in READ_METHODS else "admin"


class Authenticator:
    """The token check of one service. ``authorize`` for each request; ``replace_dynamic`` installs
    the tokens of a database (the router's persons plugin does, periodically)."""

    def __init__(self, enabled: bool, tokens: Iterable[StoredToken], writes_only: bool = False,
                 database_tokens: bool = False, refresh_s: float = 10.0) -> None:
        self.enabled = enabled
        self.tokens = tuple(tokens)
        #: only what needs more than ``read`` is checked: ``guard_writes`` on loopback with tokens
        self.writes_only = writes_only
        self.database_tokens = database_tokens
        self.refresh_s = refresh_s
        self._dynamic: tuple[StoredToken, ...] = ()

    @classmethod
    def from_config(cls, cfg: AuthConfig, host: str, service: str, *,
                    guard_writes: bool = False) -> "Authenticator":
        """The check of ``service`` bound to ``host``. With ``guard_writes`` (facerouter, the video
        worker), ``required: auto`` on loopback still checks writes when any token is configured."""
        enabled = cfg.required == "always" or (cfg.required == "auto" and not is_loopback(host))
        tokens = []
        for i, t in enumerate(cfg.tokens):
            name = t.name or f"token{i}"
            if t.token is not None:
                secret = t.token.get_secret_value()
                if len(secret) < 16:
                    raise AuthSetupError(f"{service}: auth token {name!r} is shorter than 16 characters")
                sha = digest(secret)
            else:
                sha = str(t.sha256)
            tokens.append(StoredToken(sha, canonical_role(t.role), name,
                                      t.expires.timestamp() if t.expires else None))
        has_tokens = bool(tokens) or cfg.database_tokens
        writes_only = False
        if not enabled and guard_writes and cfg.required == "auto" and has_tokens:
            enabled = writes_only = True
        if enabled and not has_tokens:
            why = "auth.required is always" if cfg.required == "always" else f"it binds to {host}, not loopback"
            raise AuthSetupError(f"{service} must check API tokens ({why}) but auth.tokens is empty; "
                                 "add tokens or set auth.required: never")
        return cls(enabled, tokens, writes_only, cfg.database_tokens, cfg.database_refresh_s)

    def replace_dynamic(self, tokens: Iterable[StoredToken]) -> None:
        """Install the database's tokens (replacing the ones installed before)."""
        self._dynamic = tuple(tokens)

    def known_tokens(self) -> tuple[StoredToken, ...]:
        """The tokens of the config and of the database (the console's login checks these)."""
        return tuple(self.tokens) + self._dynamic

    def authorize(self, method: str, path: str, authorization: str | None,
                  need: str | None = None) -> Principal | None:
        """The token holder, or None when the route is open (or auth is off); raises AuthError when
        refused. ``need`` is the route's role (default: :func:`default_role`), ``open`` for none."""
        need = need or default_role(method)
        if not self.enabled or path in OPEN_PATHS or need == "open":
            return None
        if self.writes_only and need == "read":
            return None
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme not in ("Bearer", "Token") or not credentials.strip():
            raise AuthError(401, "missing API token: send Authorization: Bearer <token>")
        given = digest(credentials.strip())
        found = None
        for tok in self.tokens + self._dynamic:  # every entry compared: no early exit to time
            if hmac.compare_digest(tok.sha256, given):
                found = tok
        if found is None:
            raise AuthError(401, "unknown API token")
        if found.expires is not None and time.time() >= found.expires:
            raise AuthError(401, f"token {found.name!r} expired", Principal(found.name, found.role))
        if need not in GRANTS.get(found.role, frozenset()):
            raise AuthError(403, f"token {found.name!r} has role {found.role}; "
                                 f"{method} {path} needs {need}", Principal(found.name, found.role))
        return Principal(found.name, found.role)

    def check(self, method: str, path: str, authorization: str | None,
              need: str | None = None) -> str | None:
        """The token holder's name, or None when not checked; raises AuthError when refused."""
        who = self.authorize(method, path, authorization, need)
        return who.name if who else None


def bearer(token: str | None) -> dict[str, str]:
    """Headers a client sends with ``token`` (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}
