"""The video worker's route -> role table, enforced by the real job API for every role's token:
cameras (jobs) are the admin's; a camera's ingest token cannot touch them."""
from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from facestack.core.auth import GRANTS
from facestack.core.roles import VIDEO_WORKER
from tests.video_worker.conftest import api, worker_config

TOKENS = {role: f"{role}-token-0123456789" for role in ("read", "ingest", "operator", "admin")}
AUTH = {"required": "always",
        "tokens": [{"token": t, "role": r, "name": f"{r}-holder"} for r, t in TOKENS.items()]}


async def test_every_route_checks_its_role(start_worker, tmp_path, router, people_clip) -> None:
    db = tmp_path / "audit.db"
    worker = await start_worker(worker_config(tmp_path, router.url, auth=AUTH,
                                              audit={"database_url": f"sqlite+aiosqlite:///{db}"}))
    for (method, route), need in sorted(VIDEO_WORKER.items()):
        path = route.replace("{id}", "nojob")
        for role, token in TOKENS.items():
            kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
            if method == "POST" and not path.endswith("restart"):
                kw["json"] = {"stream_url": "ftp://127.0.0.1/x"}  # refused by the policy: no job starts
            status, body = await api(worker, method, path, **kw)
            allowed = need == "open" or need in GRANTS[role]
            assert (status != 403) == allowed, (method, route, role, status, body)
        if need != "open":
            assert (await api(worker, method, path))[0] == 401
    status, jobs = await api(worker, "GET", "/jobs", headers={"Authorization": f"Bearer {TOKENS['read']}"})
    assert status == 200 and "nojob" not in str(jobs)  # the policy refused the admin's job
    # every write, refused or not, is in the audit table (written in the background)
    rows: list = []
    for _ in range(100):
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT service, token, method, route, status FROM persons_audit").fetchall()
        if len(rows) >= 15:
            break
        await asyncio.sleep(0.05)
    assert ("video_worker", "read-holder", "DELETE", "/job/{id}", 403) in rows
    assert ("video_worker", "admin-holder", "POST", "/job/{id}", 400) in rows
    assert ("video_worker", "anonymous", "POST", "/job/{id}/restart", 401) in rows
