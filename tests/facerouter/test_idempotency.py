"""A post delivered again (same Idempotency-Key) is one event: same event_id, plugins once, across
router restarts (issue 14 #15)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from facerouter.dedup import EventStore
from tests.facerouter.conftest import frame_parts, multipart

COUNTER = """
    from facerouter.plugin import Plugin

    class Counter(Plugin):
        def __init__(self, ctx):
            super().__init__(ctx)
            self.events = []
        async def preprocess(self, request, labels):
            return ("facen",)
        async def process(self, request, photo, bbox, event_id, detection):
            assert request.event_id == event_id
            self.events.append((event_id, request.redelivered, request.params.idempotency_key))
"""


async def post(r: Any, key: str | None) -> tuple[int, Any]:
    body, ctype = multipart(frame_parts())
    headers = {"Content-Type": ctype}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with r.http.post(r.base + "/v0/frame", data=body, headers=headers) as resp:
        return resp.status, await resp.json()


def seen(r: Any) -> list[tuple[int, bool, str | None]]:
    return r.router.registry["counter"].obj.events


async def test_a_repeated_key_is_one_event(start_router, fake_sfapi) -> None:
    r = await start_router({"counter": COUNTER}, sfapi_url=fake_sfapi.base)
    answers = [await post(r, "cam1:run-a:7:0") for _ in range(3)]
    assert [s for s, _ in answers] == [200, 200, 200]
    ids = {b["event_id"] for _, b in answers}
    assert len(ids) == 1
    assert "duplicate" not in answers[0][1] and answers[1][1]["duplicate"] is True
    assert answers[1][1]["processed"] == ["counter"]
    assert seen(r) == [(int(ids.pop()), False, "cam1:run-a:7:0")]
    assert len(fake_sfapi.detects) == 1
    status, other = await post(r, "cam1:run-a:7:1")
    assert status == 200 and other["event_id"] != answers[0][1]["event_id"]
    await post(r, None)
    await post(r, None)
    assert len(seen(r)) == 4  # frames without a key are never deduplicated


async def test_concurrent_deliveries_of_one_key(start_router, fake_sfapi) -> None:
    fake_sfapi.delay = 0.2
    r = await start_router({"counter": COUNTER}, sfapi_url=fake_sfapi.base)
    answers = await asyncio.gather(*(post(r, "cam1:run-b:1:0") for _ in range(4)))
    assert {s for s, _ in answers} == {200}
    assert len({b["event_id"] for _, b in answers}) == 1
    assert sum(1 for _, b in answers if b.get("duplicate")) == 3
    assert len(seen(r)) == 1


async def test_a_failed_delivery_keeps_its_event_id(start_router, fake_sfapi) -> None:
    """sfapi down on the first delivery: the sender retries, the event keeps its id and the plugins
    see it once, marked redelivered."""
    r = await start_router({"counter": COUNTER}, sfapi_url=fake_sfapi.base)
    fake_sfapi.fail = (503, "OVER_CAPACITY")
    status, first = await post(r, "cam1:run-c:2:0")
    assert status == 503
    fake_sfapi.fail = None
    status, second = await post(r, "cam1:run-c:2:0")
    assert status == 200 and "duplicate" not in second
    assert seen(r) == [(int(second["event_id"]), True, "cam1:run-c:2:0")]
    status, third = await post(r, "cam1:run-c:2:0")
    assert third["event_id"] == second["event_id"] and third["duplicate"] is True


async def test_keys_survive_a_router_restart(start_router, fake_sfapi, tmp_path: Path) -> None:
    r1 = await start_router({"counter": COUNTER}, sfapi_url=fake_sfapi.base)
    status, first = await post(r1, "cam1:run-d:3:0")
    assert status == 200
    await r1.router.shutdown()
    assert (tmp_path / "facerouter_events.sqlite").exists()
    r2 = await start_router({"counter": COUNTER}, sfapi_url=fake_sfapi.base)
    status, again = await post(r2, "cam1:run-d:3:0")
    assert status == 200 and again["event_id"] == first["event_id"] and again["duplicate"] is True
    assert seen(r2) == []


async def test_the_store_is_bounded(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.sqlite", max_keys=100)
    await store.open()
    try:
        for i in range(120):
            claim = await store.claim(f"k{i}", 1000 + i)
            assert not claim.seen
            await store.done(f"k{i}", {"event_id": str(1000 + i)})
        assert (await store.claim("k119", 1)).answer == {"event_id": "1119"}
        assert not (await store.claim("k0", 5)).seen  # the oldest were forgotten
    finally:
        await store.close()
    reopened = EventStore(tmp_path / "events.sqlite", max_keys=100)
    await reopened.open()
    try:
        assert (await reopened.claim("k100", 1)).event_id == 1100
    finally:
        await reopened.close()
