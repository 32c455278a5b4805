"""Latency tracing: the wall-clock times in detectorParams and the trace of acknowledged posts."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from tests.video_worker.conftest import RouterStandIn, wait_for, worker_config
from video_worker.app import Worker

TIMES = ("decoded_at", "analysed_at", "sent_at", "acked_at")
COUNTER = """
from facerouter.plugin import Plugin

class Counter(Plugin):
    async def preprocess(self, request, labels):
        return ("facen",)

    async def process(self, request, photo, bbox, event_id, detection):
        pass
"""


def job(clip: Path, **settings: Any) -> dict[str, Any]:
    return {"id": "cam1", "stream_url": str(clip), "single_pass": True, "settings": settings}


async def finish(worker: Worker) -> None:
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    await asyncio.wait_for(cam.outbox.drained(), 60)


def read_trace(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_posts_carry_wall_clock_times(start_worker, tmp_path, router, people_clip) -> None:
    started = time.time()
    worker = await start_worker(worker_config(tmp_path, router.url, [job(people_clip[0])]))
    await finish(worker)
    assert len(router.posts) == 4
    for post in router.posts:
        p = post["detectorParams"]
        assert started <= p["decoded_at"] <= p["analysed_at"] <= p["sent_at"] <= time.time()
    assert worker.manager.get("cam1").outbox.trace is None  # no trace_path: nothing traced
    assert sorted(x.name for x in tmp_path.iterdir()) == ["state"]


async def test_stream_timestamps_are_no_decode_time(start_worker, tmp_path, router, people_clip) -> None:
    worker = await start_worker(worker_config(tmp_path, router.url, [
        job(people_clip[0], use_stream_timestamp=True, start_stream_timestamp=1_000_000.0)]))
    await finish(worker)
    assert router.posts and all(p["detectorParams"]["decoded_at"] is None for p in router.posts)
    assert all(p["detectorParams"]["analysed_at"] > 1_000_000_000 for p in router.posts)


async def test_trace_of_acknowledged_posts_through_the_real_router(start_worker, start_router, fake_sfapi,
                                                                   tmp_path, people_clip) -> None:
    r = await start_router({"counter": COUNTER}, sfapi_url=fake_sfapi.base)
    trace = tmp_path / "trace" / "e2e.jsonl"
    worker = await start_worker(worker_config(tmp_path, r.base, [job(people_clip[0])],
                                              delivery={"trace_path": str(trace)}))
    await finish(worker)
    records = read_trace(trace)
    assert len(records) == 4
    assert len({rec["track"] for rec in records}) == 4 and len({rec["event_id"] for rec in records}) == 4
    for rec in records:
        assert rec["cam"] == "cam1" and rec["bs_type"] == "overall" and isinstance(rec["frame_no"], int)
        times = [rec[k] for k in TIMES]
        assert times == sorted(times), rec
        t = rec["router"]
        assert set(t) == {"preprocess_s", "detect_s", "process_s", "total_s", "started_at"}
        assert rec["sent_at"] <= t["started_at"] <= t["started_at"] + t["total_s"] <= rec["acked_at"]
        assert t["preprocess_s"] + t["detect_s"] + t["process_s"] <= t["total_s"]


async def test_trace_after_an_outage_has_the_delivering_attempt(start_worker, tmp_path, router,
                                                                people_clip) -> None:
    router.status = 503  # every attempt fails: the posts go to the spool
    trace = tmp_path / "trace.jsonl"
    worker = await start_worker(worker_config(tmp_path, router.url, [job(people_clip[0])],
                                              delivery={"trace_path": str(trace)}))
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    await wait_for(lambda: cam.stats.posts_failed >= 2)
    assert not trace.exists()  # failed attempts are not traced
    healed = time.time()
    router.status = 200
    await asyncio.wait_for(cam.outbox.drained(), 60)
    records = read_trace(trace)
    assert len(records) == len(router.posts) == 4
    for rec, post in zip(records, router.posts):
        assert rec["analysed_at"] < healed <= rec["sent_at"] <= rec["acked_at"]
        assert post["detectorParams"]["sent_at"] == rec["sent_at"]  # the router saw that attempt's time
        assert rec["router"] is None  # the stand-in answers no timings


async def test_cameras_share_one_trace(start_worker, tmp_path, router, people_clip) -> None:
    trace = tmp_path / "trace.jsonl"
    jobs = [{**job(people_clip[0]), "id": f"cam{i}"} for i in range(3)]
    worker = await start_worker(worker_config(tmp_path, router.url, jobs, delivery={"trace_path": str(trace)}))
    for i in range(3):
        cam = worker.manager.get(f"cam{i}")
        await asyncio.wait_for(cam.finished.wait(), 60)
        await asyncio.wait_for(cam.outbox.drained(), 60)
    records = read_trace(trace)  # every line whole
    assert sorted(rec["cam"] for rec in records) == ["cam0"] * 4 + ["cam1"] * 4 + ["cam2"] * 4


def test_trace_path_is_relative_to_the_config(tmp_path) -> None:
    import yaml

    from video_worker.config import load

    path = tmp_path / "conf" / "vw.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({"delivery": {"trace_path": "trace/e2e.jsonl"}}))
    assert load(path).delivery.trace_path == tmp_path / "conf" / "trace" / "e2e.jsonl"
    assert load(None).delivery.trace_path is None
