"""Image retention survives bad sources: a stored source with settings that no longer validate
(``license: 1e30`` from an older version) loads with defaults, and a source whose expiry fails
does not stop the pass for the others."""
from __future__ import annotations

import sys
from typing import Any

from tests.plugins.persons.conftest import make_source


async def test_one_bad_source_never_stops_retention(start_persons) -> None:
    env = await start_persons({"image_retention_days": 0})
    a = await make_source(env, "a", use_pps_time=True, image_retention_days=1)
    b = await make_source(env, "b", use_pps_time=True, image_retention_days=1)
    c = await make_source(env, "c", use_pps_time=True)
    for cam in ("a", "b"):
        status, _ = await env.frame("biden/img1.jpg", cam_id=cam, timestamp="2024-05-01T12:30:00Z")
        assert status == 200

    # what an older version stored for {"name": "c", "license": 1e30}: it loads, with defaults
    repo = env.plugin.sources
    table = sys.modules[type(repo).__module__].sources
    async with env.plugin.db.begin() as conn:
        await conn.execute(table.update().where(table.c.id == c["id"]).values(
            settings={"license": 1e30, "use_pps_time": True}))
    await repo.load()
    assert repo.by_name("c").settings.license_id is None
    assert repo.by_name("c").settings.use_pps_time is True

    # source a's expiry fails; b's images still go
    retention = env.plugin.retention
    expire = retention._expire

    async def failing(source_ids: list[int], before_ms: int, **kw: Any) -> int:
        if source_ids == [a["id"]]:
            raise RuntimeError("disk trouble")
        return await expire(source_ids, before_ms, **kw)

    retention._expire = failing
    assert await retention.run_once() == 2          # b's face and photo
    assert retention.failed_sources == [a["id"]]
    status, page = await env.api("GET", f"/entries?sources_ids={b['id']}")
    assert page["results"][0]["images"] == {"face": None, "photo": None}
    status, page = await env.api("GET", f"/entries?sources_ids={a['id']}")
    assert page["results"][0]["images"]["face"] is not None
    retention._expire = expire
    assert await retention.run_once() == 2 and retention.failed_sources == []
