"""Tokens and the audit log in the persons database.

:class:`TokenRepo` keeps API tokens by name: only the SHA-256 of each secret, the role, the
creation time, an optional expiry and the revocation time (a revoked token stays listed).
``facestack token create|list|revoke`` and the admin routes ``/tokens`` use it; the router
re-reads the live tokens every ``auth.database_refresh_s`` (:class:`TokenRefresher`).
:class:`AuditRepo` stores the audit records the router writes (:mod:`facestack.core.audit`) and answers
``GET /audit``; nothing updates or deletes them.
"""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from typing import Any

import sqlalchemy as sa

from facestack.core.audit_store import AuditWriter
from facestack.core.auth import ROLES, Authenticator, StoredToken, canonical_role, digest

from .errors import BadParam, Conflict, NotFound
from .storage import Database, tokens

__all__ = ["TokenRepo", "TokenRefresher", "AuditRepo", "new_secret"]

log = logging.getLogger(__name__)
NAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,128}$")


def new_secret() -> str:
    """A new token secret: 256 random bits, URL-safe."""
    return "fst_" + secrets.token_urlsafe(32)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _token_json(row: Any) -> dict[str, Any]:
    now = _now_ms()
    state = ("revoked" if row.revoked_ms is not None else
             "expired" if row.expires_ms is not None and row.expires_ms <= now else "active")
    return {"name": row.name, "role": row.role, "created_ms": row.created_ms,
            "expires_ms": row.expires_ms, "revoked_ms": row.revoked_ms, "state": state,
            "sha256_prefix": row.sha256[:8]}


class TokenRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str, role: str, expires_in_s: float | None = None) -> tuple[str, dict[str, Any]]:
        """A new token: ``(secret, its listing)``. The secret is not stored and cannot be shown again."""
        if not isinstance(name, str) or not NAME.match(name):
            raise BadParam("a token name is 1-128 letters, digits or _.@:-", param="name", value=name)
        if not isinstance(role, str) or canonical_role(role) not in ROLES:
            raise BadParam(f"role is one of {', '.join(ROLES)}", param="role", value=role)
        if expires_in_s is not None and (isinstance(expires_in_s, bool) or not isinstance(
                expires_in_s, (int, float)) or not 0 < expires_in_s <= 100 * 365 * 86400):
            raise BadParam("expires_in_s is seconds, 1 to 100 years", param="expires_in_s", value=expires_in_s)
        secret = new_secret()
        now = _now_ms()
        row = {"name": name, "sha256": digest(secret), "role": canonical_role(role), "created_ms": now,
               "expires_ms": now + int(expires_in_s * 1000) if expires_in_s else None,
               "revoked_ms": None}
        async with self.db.begin() as conn:
            if (await conn.execute(sa.select(tokens.c.name).where(tokens.c.name == name))).first():
                raise Conflict(f"a token named {name!r} exists (names are never reused)", param="name", value=name)
            await conn.execute(tokens.insert().values(**row))
        return secret, _token_json(_Obj(row))

    async def list(self) -> list[dict[str, Any]]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(sa.select(tokens).order_by(tokens.c.created_ms, tokens.c.name))).all()
        return [_token_json(r) for r in rows]

    async def revoke(self, name: str) -> dict[str, Any]:
        async with self.db.begin() as conn:
            row = (await conn.execute(sa.select(tokens).where(tokens.c.name == name))).first()
            if row is None:
                raise NotFound(f"no token named {name!r}", param="name", value=name)
            if row.revoked_ms is None:
                await conn.execute(tokens.update().where(tokens.c.name == name).values(revoked_ms=_now_ms()))
            row = (await conn.execute(sa.select(tokens).where(tokens.c.name == name))).first()
        return _token_json(row)

    async def live(self) -> list[StoredToken]:
        """The tokens to accept: not revoked (expiry is checked at each request)."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(sa.select(tokens).where(tokens.c.revoked_ms.is_(None)))).all()
        return [StoredToken(r.sha256, r.role, r.name, r.expires_ms / 1000 if r.expires_ms else None)
                for r in rows]


class _Obj:
    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)


class TokenRefresher:
    """Installs the database's live tokens into the router's authenticator, now and periodically."""

    def __init__(self, repo: TokenRepo, auth: Authenticator) -> None:
        self.repo = repo
        self.auth = auth
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        if self.auth.database_tokens:
            self.auth.replace_dynamic(await self.repo.live())

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="persons-token-refresh")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.auth.refresh_s)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - keep the tokens we have; try again next time
                log.exception("persons: cannot re-read the API tokens; keeping the last ones")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


AUDIT_FILTERS = ("token", "method", "route", "object_id", "status", "service")


class AuditRepo(AuditWriter):
    """The router's audit records in the persons database (:class:`facestack.core.audit_store.AuditWriter`)."""
