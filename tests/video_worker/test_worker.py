"""The worker on a generated H.264 clip, posting to a facerouter stand-in on loopback."""
from __future__ import annotations

import asyncio
import datetime
import io
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from facestack.stack import clips
from tests.video_worker.conftest import RouterStandIn, api, free_port, wait_for, worker_config
from video_worker.app import Worker

EXPECTED_TRACKS = {"obama": 1, "biden": 2, "kit": 1}


def job(clip: Path, **settings: object) -> dict:
    return {"id": "cam1", "stream_url": str(clip), "single_pass": True, "labels": {"site": "hq"},
            "settings": settings}


async def run_clip(start_worker, tmp_path: Path, router: RouterStandIn, clip: Path, **settings: object) -> Worker:
    worker = await start_worker(worker_config(tmp_path, router.url, [job(clip, **settings)]))
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    await asyncio.wait_for(cam.outbox.drained(), 60)
    return worker


def who(scene: clips.Scene, post: dict) -> str | None:
    p = post["detectorParams"]
    return clips.person_at(scene, p["frame_no"], p["frame_bbox"])


async def test_overall_one_post_per_track(start_worker, tmp_path, router, people_clip) -> None:
    clip, scene = people_clip
    worker = await run_clip(start_worker, tmp_path, router, clip)
    posts = router.posts
    assert {p["bs_type"] for p in posts} == {"overall"}
    assert Counter(who(scene, p) for p in posts) == EXPECTED_TRACKS
    assert len({p["detectorParams"]["track"] for p in posts}) == 4
    biden = sorted((p for p in posts if who(scene, p) == "biden"),
                   key=lambda p: p["detectorParams"]["track_start_frame"])
    assert biden[0]["detectorParams"]["track_end_frame"] < 30 < 65 <= biden[1]["detectorParams"]["track_start_frame"]
    for post in posts:
        params = post["detectorParams"]
        photo = Image.open(io.BytesIO(post["photo"]))
        face0 = Image.open(io.BytesIO(post["face0"]))
        assert photo.size == (640, 360) and face0.size == (200, 200)
        x1, y1, x2, y2 = post["bbox"][0]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360 and [x1, y1, x2, y2] == params["frame_bbox"]
        assert post["cam_id"] == "cam1" and post["labels"] == {"site": "hq"}
        assert datetime.datetime.fromisoformat(post["timestamp"]).tzinfo is not None
        assert params["track_start_frame"] <= params["frame_no"] <= params["track_end_frame"]
        assert 0.1 <= params["quality"] <= 1 and params["score"] > 0.95 and len(params["landmarks"]) == 5
        assert params["track_end"] >= params["track_start"]
    stats = worker.manager.get("cam1").view()["statistic"]
    assert stats["frames_decoded"] == 100 and stats["frames_analysed"] == 20
    assert stats["faces_posted"] == 4 and stats["tracks"] == 4 and stats["frames_dropped"] == 0
    assert stats["processed_duration"] == pytest.approx(3.96, abs=0.05)


async def test_realtime_posts_and_crop(start_worker, tmp_path, router, people_clip) -> None:
    clip, scene = people_clip
    await run_clip(start_worker, tmp_path, router, clip, overall_only=False, realtime_post_interval=0.5,
                   realtime_post_every_interval=True, realtime_post_first_immediately=True,
                   photo="crop", crop_scale=2.0, detect_fps=10)
    kinds = Counter((who(scene, p), p["bs_type"]) for p in router.posts)
    for person, tracks in EXPECTED_TRACKS.items():
        assert kinds[(person, "overall")] == tracks
    # obama is seen 4 s: one post at once, then one per 0.5 s interval
    assert 7 <= kinds[("obama", "realtime")] <= 9, kinds
    assert kinds[("kit", "realtime")] >= 4 and kinds[("biden", "realtime")] >= 4
    for post in router.posts:
        photo = Image.open(io.BytesIO(post["photo"]))
        assert photo.size[0] < 640 and photo.size[1] < 360
        x1, y1, x2, y2 = post["bbox"][0]
        assert 0 <= x1 < x2 <= photo.size[0] and 0 <= y1 < y2 <= photo.size[1]
    live = [p for p in router.posts if p["bs_type"] == "realtime" and p["detectorParams"]["track_end_frame"] is None]
    assert len(live) >= 10  # picked while their track was still going


async def test_router_outage_loses_nothing_and_keeps_order(start_worker, tmp_path, people_clip) -> None:
    """The router is down (connection refused), then answers 503, then comes back: every post
    arrives once, in the order of a run without outage."""
    clip, scene = people_clip
    reference = RouterStandIn(free_port())
    await reference.start()
    try:
        await run_clip(start_worker, tmp_path / "ref", reference, clip, overall_only=False,
                       realtime_post_interval=0.5)
    finally:
        await reference.stop()
    expected = [(p["bs_type"], p["detectorParams"]["track"], p["detectorParams"]["frame_no"])
                for p in reference.posts]

    router = RouterStandIn(free_port())  # not listening yet
    worker = await start_worker(worker_config(tmp_path / "out", router.url, [
        job(clip, overall_only=False, realtime_post_interval=0.5)], delivery={"memory_queue": 2}))
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    assert len(cam.outbox.spool) == len(expected)
    metrics = (await api(worker, "GET", "/metrics"))[1]
    assert f'video_worker_spool_posts{{camera="cam1"}} {float(len(expected))}' in metrics
    router.status = 503
    await router.start()
    try:
        await wait_for(lambda: router.attempts >= 2)
        router.status = 200
        await asyncio.wait_for(cam.outbox.drained(), 30)
    finally:
        await router.stop()
    got = [(p["bs_type"], p["detectorParams"]["track"], p["detectorParams"]["frame_no"]) for p in router.posts]
    assert got == expected
    stats = cam.view()["statistic"]
    assert stats["faces_posted"] == len(expected) and stats["posts_dropped"] == 0
    assert stats["posts_failed"] >= 2 and stats["spool_bytes"] == 0


async def test_spool_is_bounded_oldest_dropped(start_worker, tmp_path, people_clip) -> None:
    clip, _ = people_clip
    router = RouterStandIn(free_port())  # never listening
    worker = await start_worker(worker_config(tmp_path, router.url, [
        job(clip, overall_only=False, realtime_post_interval=0.5)],
        delivery={"spool_max_bytes": 120_000}))
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    stats = cam.view()["statistic"]
    assert stats["posts_dropped"] > 0 and 0 < stats["spool_bytes"] <= 120_000
    assert stats["posts_dropped"] + len(cam.outbox.spool) == stats["posts_spooled"]
    # the spool survives a restart of the worker, and is delivered to the router once it is up
    left = len(cam.outbox.spool)
    await worker.shutdown()
    await router.start()
    try:
        cfg = worker_config(tmp_path, router.url, [job(clip, overall_only=False, realtime_post_interval=0.5)],
                            delivery={"spool_max_bytes": 120_000})
        cfg = cfg.model_copy(update={"jobs": [cfg.jobs[0].model_copy(update={"stream_url": str(tmp_path / "none.mp4")})]})
        worker2 = await start_worker(cfg)
        await wait_for(lambda: len(router.posts) >= left)
        assert len(router.posts) == left
        await worker2.shutdown()
    finally:
        await router.stop()


async def test_spooled_posts_expire_after_spool_max_age(start_worker, tmp_path, people_clip, caplog) -> None:
    """Retention of spooled posts: young posts wait in the spool; once older than
    ``spool_max_age_s`` they are dropped (counted and logged), also after a restart, and are not
    sent to the router even when it is back."""
    clip, _ = people_clip
    router = RouterStandIn(free_port())  # down while the clip runs
    spec = job(clip, overall_only=False, realtime_post_interval=0.5)
    worker = await start_worker(worker_config(tmp_path, router.url, [spec],
                                              delivery={"spool_max_age_s": 3600}))
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    left = len(cam.outbox.spool)
    stats = cam.view()["statistic"]
    assert left > 0 and stats["posts_dropped"] == 0 and stats["posts_spooled"] >= left
    await worker.shutdown()
    max_age = 0.3
    await asyncio.sleep(max_age + 0.2)  # every spooled post is now older than max_age

    await router.start()
    try:
        cfg = worker_config(tmp_path, router.url, [spec], delivery={"spool_max_age_s": max_age})
        cfg = cfg.model_copy(update={"jobs": [cfg.jobs[0].model_copy(update={"stream_url": str(tmp_path / "none.mp4")})]})
        worker2 = await start_worker(cfg)  # the job is done: worker2 only delivers its spool
        spool_dir = tmp_path / "state" / "spool" / "cam1"
        await wait_for(lambda: not list(spool_dir.glob("*.post")))
        dropped = f'video_worker_posts_total{{camera="cam1",result="dropped"}} {float(left)}'
        for _ in range(100):  # the files go first, the counters follow
            metrics = (await api(worker2, "GET", "/metrics"))[1]
            if dropped in metrics:
                break
            await asyncio.sleep(0.1)
        assert dropped in metrics
        assert 'video_worker_spool_posts{camera="cam1"} 0.0' in metrics
        assert any("older than" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
        assert router.posts == [] and router.attempts == 0
    finally:
        await router.stop()


async def test_job_api_and_persistence(start_worker, tmp_path, router, people_clip) -> None:
    clip, _ = people_clip
    cfg = worker_config(tmp_path, router.url)
    worker = await start_worker(cfg)
    status, body = await api(worker, "POST", "/job/door", json={
        "stream_url": str(clip), "labels": {"door": "front"}, "single_pass": True,
        "settings": {"detect_fps": 2}})
    assert status == 201, body
    assert body["id"] == "door" and body["router_url"] == router.url and body["worker_id"] == "video-worker-1"
    assert set(body["statistic"]) >= {"frames_decoded", "frames_dropped", "faces_posted", "processed_duration",
                                      "last_error"}
    await asyncio.wait_for(worker.manager.get("door").finished.wait(), 60)
    status, body = await api(worker, "GET", "/job/door")
    assert status == 200 and body["status"] == "finished" and body["statistic"]["frames_analysed"] == 8
    status, body = await api(worker, "POST", "/job/loop", json={"stream_url": str(clip), "settings": {"play_speed": 1}})
    assert status == 201
    status, body = await api(worker, "POST", "/job/bad", json={"stream_url": str(clip), "settings": {"detect_fps": 0}})
    assert status == 400 and body["code"] == "BAD_PARAM" and "detect_fps" in body["desc"]
    status, body = await api(worker, "POST", "/job/bad", json={"stream_url": str(clip), "colour": 1})
    assert status == 400 and "colour" in body["desc"]
    status, body = await api(worker, "GET", "/job/nope")
    assert status == 404 and body["code"] == "NOT_FOUND"
    status, jobs = await api(worker, "GET", "/jobs")
    assert [j["id"] for j in jobs] == ["door", "loop"]
    status, body = await api(worker, "POST", "/job/loop/restart")
    assert status == 200 and body["status"] in ("starting", "running")
    status, health = await api(worker, "GET", "/healthz")
    assert status == 200 and health["status"] == "ok" and health["jobs"] == 2
    assert (await api(worker, "DELETE", "/job/door"))[0] == 204
    await worker.shutdown()

    worker2 = await start_worker(cfg)
    status, jobs = await api(worker2, "GET", "/jobs")
    assert [(j["id"], j["settings"]) for j in jobs] == [("loop", {"play_speed": 1})]
    await wait_for(lambda: worker2.manager.get("loop").stats.frames_decoded > 0)
    metrics = (await api(worker2, "GET", "/metrics"))[1]
    assert 'video_worker_frames_decoded_total{camera="loop"}' in metrics


async def test_config_file_errors_and_check_config(tmp_path, capsys) -> None:
    from video_worker.cli import main
    from video_worker.config import load
    from video_worker.errors import ConfigError

    repo = Path(__file__).resolve().parents[2]
    assert main(["--config", str(repo / "config" / "video_worker.yaml"), "--check-config"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: 1\ndefaults:\n  detect_fps: 5\n  filter_min_siz: 3\njobs:\n  - id: a\n"
                   "    stream_url: x.mp4\n    settings: {rot: 45}\n")
    with pytest.raises(ConfigError) as err:
        load(bad)
    assert f"{bad}:4 defaults.filter_min_siz: unknown key" in str(err.value)
    assert main(["--config", str(bad), "--check-config"]) == 2
    assert "filter_min_siz" in capsys.readouterr().err
    bad.write_text("jobs:\n  - id: a\n    stream_url: x.mp4\n    settings: {rot: 45}\n")
    with pytest.raises(ConfigError, match="rot"):
        load(bad)
