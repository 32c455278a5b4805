"""The video worker's route -> role table, enforced by the real job API for every role's token:
cameras (jobs) are the admin's; a camera's ingest token cannot touch them."""
from __future__ import annotations

from typing import Any

from sfapi.auth import GRANTS
from sfapi.roles import VIDEO_WORKER
from tests.video_worker.conftest import api, worker_config

TOKENS = {role: f"{role}-token-0123456789" for role in ("read", "ingest", "operator", "admin")}
AUTH = {"required": "always",
        "tokens": [{"token": t, "role": r, "name": f"{r}-holder"} for r, t in TOKENS.items()]}


async def test_every_route_checks_its_role(start_worker, tmp_path, router, people_clip) -> None:
    worker = await start_worker(worker_config(tmp_path, router.url, auth=AUTH))
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
