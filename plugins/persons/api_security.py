"""HTTP, admins only: API tokens and the audit log.

* ``GET {prefix}/tokens`` -> ``{"results": [token]}`` (name, role, state, times; never a secret)
* ``POST {prefix}/tokens`` ``{"name", "role", "expires_in_s"?}`` -> 201 ``{"token": <secret>, ...}``:
  the secret is shown this once
* ``DELETE {prefix}/tokens/{name}`` -> the revoked token (it stays listed; its name is not reused)
* ``GET {prefix}/audit?token=&method=&route=&object_id=&status=&service=&since=&until=&after_id=&limit=``
  -> ``{"results": [record], "next_after_id"}``, oldest first

The audit log has no write route: it is append-only from the API.
"""
from __future__ import annotations

from .api_base import ApiHandler
from .params import from_ms, to_ms
from .security import AUDIT_FILTERS

__all__ = ["TokensHandler", "TokenHandler", "AuditHandler"]

ADMIN = {"GET": "admin", "POST": "admin", "DELETE": "admin"}


class TokensHandler(ApiHandler):
    """``{prefix}/tokens``."""

    auth_roles = ADMIN

    async def get(self) -> None:
        self.query(())
        self.send({"results": await self.plugin.tokens.list()})

    async def post(self) -> None:
        self.query(())
        body = self.body_json()
        unknown = set(body) - {"name", "role", "expires_in_s"}
        if unknown:
            from .errors import BadParam
            name = sorted(unknown)[0]
            raise BadParam(f"unknown field {name!r}; known: expires_in_s, name, role", param=name,
                           value=None)
        secret, listing = await self.plugin.tokens.create(body.get("name"), body.get("role", "read"),
                                                          body.get("expires_in_s"))
        await self.plugin.token_refresher.refresh()
        self.audit_detail = f"created {listing['role']} token {listing['name']!r}"
        self.send({"token": secret, **listing}, 201)


class TokenHandler(ApiHandler):
    """``{prefix}/tokens/{name}``."""

    auth_roles = ADMIN

    async def delete(self, name: str) -> None:
        self.query(())
        listing = await self.plugin.tokens.revoke(name)
        await self.plugin.token_refresher.refresh()
        self.send(listing)


class AuditHandler(ApiHandler):
    """``{prefix}/audit``."""

    auth_roles = {"GET": "admin"}

    async def get(self) -> None:
        q = self.query((*AUDIT_FILTERS, "since", "until", "after_id", "limit"))
        filters: dict[str, object] = {}
        for key in AUDIT_FILTERS:
            if key == "status":
                value = q.int("status", None, lo=100, hi=599)
            else:
                value = q.one(key)
                if key == "method" and value is not None:
                    value = value.upper()
            if value is not None:
                filters[key] = value
        since, until = q.time("since"), q.time("until")
        limit = q.int("limit", 100, lo=1, hi=1000)
        after = q.int("after_id", None, lo=0, hi=(1 << 62))
        assert limit is not None
        rows = await self.plugin.audit.query(filters, to_ms(since) if since else None,
                                             to_ms(until) if until else None, after, limit)
        for r in rows:
            r["time"] = from_ms(r["ts_ms"])
        self.send({"results": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None})
