"""The job store's rules, on SQLite and on real PostgreSQL: claims and epochs (fencing), renewals,
placement, the YAML seeding rule, deletes and restarts, single_pass jobs done once."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import AsyncIterator

import pytest

from tests.video_worker.fleet.harness import fresh_database
from video_worker.jobstore import JobStore, Report

PG_URL = os.environ.get("FACESTACK_TEST_POSTGRES_URL")
SPEC = {"stream_url": "rtsp://10.0.0.1/a", "labels": {}, "router_url": None, "single_pass": False,
        "settings": {}}


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        s = JobStore(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
        await s.open()
        yield s
        await s.close()
        return
    if not PG_URL:
        pytest.skip("needs PostgreSQL: run scripts/test-services start and source var/test-services.env "
                    "(FACESTACK_TEST_POSTGRES_URL)")
    async with fresh_database(PG_URL) as url:
        s = JobStore(url)
        await s.open()
        yield s
        await s.close()


async def beat(store: JobStore, worker: str, capacity: int = 10, reports: list[Report] | None = None,
               lease_s: float = 30.0) -> dict:
    return await store.heartbeat(worker, f"http://{worker}", capacity, lease_s, reports or [])


async def test_claims_bump_the_epoch_and_fence_the_old_owner(store: JobStore) -> None:
    assert await store.put("a", SPEC) is True
    await beat(store, "w1")
    [row] = await store.claim("w1", 10, 0, 0.2, 10)
    assert (row.owner, row.epoch) == ("w1", 1)
    assert await store.claim("w2", 10, 0, 0.2, 10) == []  # held
    await asyncio.sleep(0.3)  # the 0.2 s lease runs out (w1's heartbeat is as old: w1 is gone)
    await beat(store, "w2")
    [row2] = await store.claim("w2", 10, 0, 0.2, 10)
    assert (row2.owner, row2.epoch) == ("w2", 2)
    # w1 renews late: nothing renewed, and the answer shows the new owner and epoch
    rows = await beat(store, "w1", reports=[Report("a", 1, "running", "")])
    assert (rows["a"].owner, rows["a"].epoch) == ("w2", 2)
    rows = await beat(store, "w2", reports=[Report("a", 2, "running", "ok", {"faces_posted": 3})])
    assert rows["a"].leased and rows["a"].counters == {"faces_posted": 3}


async def test_placement_least_loaded_with_room(store: JobStore) -> None:
    for i in range(5):
        await store.put(f"j{i}", SPEC)
    await beat(store, "w1", capacity=2)
    await beat(store, "w2", capacity=2)
    got1 = await store.claim("w1", 2, 0, 30, 2)
    got2 = await store.claim("w2", 2, 0, 30, 2)
    # each takes the jobs the placement gives it (alternating), the others are left to the other
    assert [r.id for r in got1] == ["j0", "j2"] and [r.id for r in got2] == ["j1", "j3"]
    assert await store.claim("w1", 2, 2, 30, 0) == []
    await beat(store, "w3", capacity=2)  # a worker joins: it takes the job nobody had room for
    [late] = await store.claim("w3", 2, 0, 30, 2)
    assert late.owner == "w3"
    assert [(w.id, w.load) for w in await store.workers()] == [("w1", 2), ("w2", 2), ("w3", 1)]


async def test_seed_rule_and_delete(store: JobStore) -> None:
    await store.seed("w1", {"y": SPEC})
    [row] = await store.list()
    assert row.from_config and row.version == 1
    other = {**SPEC, "stream_url": "rtsp://10.0.0.2/b"}
    await store.put("y", other)  # the API edit wins while the YAML stays the same
    await store.seed("w1", {"y": SPEC})
    assert (await store.get("y")).spec == other
    assert await store.delete("y") and not await store.delete("y")
    await store.seed("w1", {"y": SPEC})
    assert await store.list() == []  # deleted stays deleted
    changed = {**SPEC, "labels": {"k": "v"}}
    await store.seed("w1", {"y": changed})  # the YAML changed: it wins again
    assert (await store.get("y")).spec == changed and (await store.get("y")).desired == "run"
    await store.seed("w1", {})  # gone from this worker's YAML: deleted
    assert await store.list() == []


async def test_single_pass_done_once_and_restart(store: JobStore) -> None:
    await store.put("s", {**SPEC, "single_pass": True})
    await beat(store, "w1")
    [row] = await store.claim("w1", 10, 0, 0.2, 10)
    await beat(store, "w1", reports=[Report("s", row.epoch, "finished", "", done=True)], lease_s=0.2)
    await asyncio.sleep(0.3)
    await beat(store, "w2")
    assert await store.claim("w2", 10, 0, 0.2, 10) == []  # done: never claimed again
    v = (await store.get("s")).version
    assert await store.restart("s")
    row = await store.get("s")
    assert row.version == v + 1 and not row.done
    [again] = await store.claim("w2", 10, 0, 0.2, 10)
    assert again.epoch == 2


async def test_the_end_of_a_run_does_not_finish_a_restart_that_came_meanwhile(store: JobStore) -> None:
    await store.put("s", {**SPEC, "single_pass": True})
    await beat(store, "w1")
    [row] = await store.claim("w1", 10, 0, 30.0, 10)
    assert await store.restart("s")  # asked again while the first run was still reporting
    late = Report("s", row.epoch, "finished", "", done=True, version=row.version)
    rows = await beat(store, "w1", reports=[late])
    assert rows["s"].version == row.version + 1 and not rows["s"].done
    rows = await beat(store, "w1", reports=[Report("s", row.epoch, "finished", "", done=True,
                                                   version=row.version + 1)])
    assert rows["s"].done  # the restarted run's own end counts
