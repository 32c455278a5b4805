"""The route -> role table of sfapi, enforced by the real service for every role's token."""
from __future__ import annotations

import logging

from facestack.core.auth import GRANTS
from facestack.core.roles import SFAPI

TOKENS = {role: f"{role}-token-0123456789" for role in ("read", "ingest", "operator", "admin")}
AUTH = {"required": "always",
        "tokens": [{"token": t, "role": r, "name": f"{r}-holder"} for r, t in TOKENS.items()]}


async def call(srv, method: str, path: str, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with srv.http.request(method, srv.base + path, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, body


def concrete(route: str) -> str:
    return route.replace("{name}", "g").replace("{id}", "1")


async def test_every_route_checks_its_role(start_server, caplog) -> None:
    caplog.set_level(logging.INFO, logger="facestack.audit")
    srv = await start_server({"auth": AUTH})
    for (method, route), need in sorted(SFAPI.items()):
        for role, token in TOKENS.items():
            status, body = await call(srv, method, concrete(route), token)
            allowed = need == "open" or need in GRANTS[role]
            assert (status != 403) == allowed, (method, route, role, status, body)
            if not allowed:
                assert body["code"] == "FORBIDDEN" and need in body["reason"]
        if need != "open":
            status, _ = await call(srv, method, concrete(route))
            assert status == 401, (method, route)
    # a route missing from the table: reads need read, writes admin
    status, _ = await call(srv, "PUT", "/v2/galleries", TOKENS["operator"])
    assert status == 403
    # every write is audited with the token's name, refused ones too
    audited = [r.getMessage() for r in caplog.records if r.name == "facestack.audit"]
    assert any('"token": "operator-holder"' in m and '"status": 403' in m for m in audited)
    assert any('"route": "/v2/galleries/{name}"' in m and '"status": 200' in m for m in audited)
    assert not any(t in caplog.text for t in TOKENS.values())
