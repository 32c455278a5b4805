"""Retention of whole entries per source (with their images) and of the archive gallery's faces,
through the real router, persons and archive plugins, and the real sfapi."""
from __future__ import annotations

import time

from sfapi.client import Client
from tests.plugins.persons.conftest import make_source

OLD = "2024-05-01T12:30:00Z"


async def test_entries_and_archive_faces_expire(start_persons) -> None:
    env = await start_persons(
        {"entry_retention_days": 0, "image_retention_days": 0},
        router={"disabled_plugins": ["webhook", "log"],
                "archive": {"gallery": "archive", "retention_days": 30}})
    short = await make_source(env, "short", use_pps_time=True, entry_retention_days=7)
    keep = await make_source(env, "keep", use_pps_time=True)
    for cam in ("short", "keep"):
        assert (await env.frame("biden/img1.jpg", cam_id=cam, timestamp=OLD))[0] == 200
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert (await env.frame("obama/img2.jpg", cam_id="short", timestamp=now))[0] == 200  # stays
    status, page = await env.api("GET", f"/entries?sources_ids={short['id']}")
    old_short = [e for e in page["results"] if e["created"].startswith("2024")]
    assert len(old_short) == 1 and old_short[0]["images"]["face"]

    removed = await env.plugin.retention.run_once()
    assert removed == 2  # the expired entry's face and photo
    assert env.plugin.retention.entries_removed == 1
    assert (await env.api("GET", f"/entries/{old_short[0]['id']}"))[0] == 404
    async with env.router.http.get(env.router.base + old_short[0]["images"]["face"]) as resp:
        assert resp.status == 404
    status, page = await env.api("GET", f"/entries?sources_ids={short['id']}")
    assert [e["created"][:4] for e in page["results"]] == [time.strftime("%Y", time.gmtime())]
    status, page = await env.api("GET", f"/entries?sources_ids={keep['id']}")
    assert len(page["results"]) == 1  # no retention on this source

    # the archive holds three faces, two from 2024; its retention keeps the recent one
    archive = env.router.router.registry["archive"].obj
    async with Client(env.sf.base) as sf:
        assert len(await sf["archive"].list()) == 3
        assert await archive.expire_once() == 2
        faces = await sf["archive"].list()
        assert len(faces) == 1 and faces[0].meta["ts"] > time.time() - 86400


async def test_source_setting_is_validated(start_persons) -> None:
    env = await start_persons()
    for bad in (-1, 36501, "7", 1.5):
        status, body = await env.api("POST", "/sources", json={"name": "x", "entry_retention_days": bad})
        assert status == 400 and body["param"] == "entry_retention_days", body
