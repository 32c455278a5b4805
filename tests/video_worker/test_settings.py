"""Per-camera settings on short generated clips, posting to the facerouter stand-in: HTTP(S)
sources, ``rot``, ``roi``, stream timestamps, ``disable_drops``, ``play_speed``, the face filters,
the realtime flags, and a missing ``/dev/video*`` camera."""
from __future__ import annotations

import asyncio
import datetime
import io
import itertools
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from tests.video_worker.conftest import RouterStandIn, api, wait_for, worker_config
from facestack.stack import clips
from video_worker.job import CameraJob
from video_worker.posts import rfc3339

#: one track per person in ``short_scene``
SHORT_TRACKS = Counter({"obama": 1, "biden": 1, "kit": 1})
#: a realtime post for every face of every analysed frame (5 fps), and the overall one per track
EVERY_FRAME = {"overall_only": False, "realtime_post_interval": 0.2, "realtime_post_every_interval": True}

_runs = itertools.count()


async def run_job(start_worker: Any, tmp_path: Path, router: RouterStandIn, url: str | Path,
                  source: dict[str, Any] | None = None, **settings: Any) -> tuple[CameraJob, list[dict[str, Any]]]:
    """Run a single_pass job to its end; returns the job and the posts it made."""
    first = len(router.posts)
    spec = {"id": "cam1", "stream_url": str(url), "single_pass": True, "settings": settings}
    worker = await start_worker(worker_config(tmp_path / f"run{next(_runs)}", router.url, [spec],
                                              source=source or {}), serve=False)
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    await asyncio.wait_for(cam.outbox.drained(), 60)
    await worker.shutdown()
    return cam, router.posts[first:]


def who(scene: clips.Scene, post: dict[str, Any]) -> str | None:
    p = post["detectorParams"]
    return clips.person_at(scene, p["frame_no"], p["frame_bbox"])


def overall(scene: clips.Scene, posts: list[dict[str, Any]]) -> Counter:
    """(person, first frame, last frame) of every track posted."""
    return Counter((who(scene, p), p["detectorParams"]["track_start_frame"], p["detectorParams"]["track_end_frame"])
                   for p in posts if p["bs_type"] == "overall")


def epoch(rfc: str) -> float:
    return datetime.datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp()


def rgb(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.float32)


# --- sources ---------------------------------------------------------------------------------------

def clip_app(clip: Path, requests: list[web.Request]) -> web.Application:
    async def serve(request: web.Request) -> web.StreamResponse:
        requests.append(request)
        return web.FileResponse(clip)

    app = web.Application()
    app.router.add_get("/cam.mp4", serve)
    return app


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_http_source_gives_the_posts_of_the_file(start_worker, tmp_path, router, short_scene, short_clip,
                                                        local_http, local_https, scheme) -> None:
    """An MP4 served over HTTP(S) (a live source: no pacing; no drops here) is analysed frame for
    frame as the same file read from disk."""
    _, from_file = await run_job(start_worker, tmp_path, router, short_clip, **EVERY_FRAME)
    requests: list[web.Request] = []
    base = await (local_http if scheme == "http" else local_https)(clip_app(short_clip, requests))
    cam, from_http = await run_job(start_worker, tmp_path, router, f"{base}/cam.mp4", disable_drops=True,
                                   **EVERY_FRAME)
    assert requests and cam.status == "finished"
    stats = cam.view()["statistic"]
    assert stats["frames_decoded"] == 50 and stats["frames_analysed"] == 10 and stats["frames_dropped"] == 0

    def key(p: dict[str, Any]) -> tuple:
        d = p["detectorParams"]
        return p["bs_type"], who(short_scene, p), d["frame_no"], d["track_start_frame"], d["track_end_frame"], p["bbox"]

    assert sorted(map(key, from_http)) == sorted(map(key, from_file))
    assert Counter(who(short_scene, p) for p in from_http if p["bs_type"] == "overall") == SHORT_TRACKS


@pytest.mark.parametrize("source, settings, dropped", [
    ("http", {"disable_drops": True}, False),
    ("http", {}, True),  # live: analysis is slower than decoding, a full queue drops the frame
    ("file", {}, False),  # files never drop
])
async def test_disable_drops(start_worker, tmp_path, router, short_clip, local_http, source, settings,
                             dropped) -> None:
    url: str | Path = short_clip
    if source == "http":
        url = await local_http(clip_app(short_clip, [])) + "/cam.mp4"
    cam, _ = await run_job(start_worker, tmp_path, router, url, source={"frame_queue": 1}, detect_fps=25,
                           **settings)
    stats = cam.view()["statistic"]
    assert stats["frames_decoded"] == 50
    assert stats["frames_analysed"] + stats["frames_dropped"] == 50  # every frame is due at 25 fps
    assert (stats["frames_dropped"] > 0) == dropped, stats


class StepClock:
    """A monotonic clock that moves only when the source waits (no wall time in the test)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def is_set(self) -> bool:
        return False

    def wait(self, delay: float) -> bool:  # the stop event's wait: time passes, nobody stops us
        self.waits.append(delay)
        self.now += delay
        return False


@pytest.mark.parametrize("speed", [1, 2, 0.5])
def test_play_speed_paces_a_file(short_clip, speed, monkeypatch) -> None:
    """A file at ``play_speed`` s hands each frame out at its stream time / s: the source waits
    exactly that long in all (on a clock that moves only when it waits)."""
    from video_worker import source as source_mod
    from video_worker.config import CameraSettings, SourceSection

    clock = StepClock()
    monkeypatch.setattr(source_mod, "time", SimpleNamespace(monotonic=clock.monotonic))
    src = source_mod.VideoSource(str(short_clip), CameraSettings(play_speed=speed), SourceSection())
    src.open()
    try:
        frames = []
        for frame in src.frames(clock):  # type: ignore[arg-type]
            assert clock.now - 1000.0 == pytest.approx(frame.pts / speed)  # handed out on time
            frames.append(frame)
    finally:
        src.close()
    assert len(frames) == 50 and frames[-1].pts == pytest.approx(49 / 25)
    assert sum(clock.waits) == pytest.approx(frames[-1].pts / speed)


def test_as_fast_as_possible_never_waits(short_clip, monkeypatch) -> None:
    from video_worker import source as source_mod
    from video_worker.config import CameraSettings, SourceSection

    clock = StepClock()
    monkeypatch.setattr(source_mod, "time", SimpleNamespace(monotonic=clock.monotonic))
    src = source_mod.VideoSource(str(short_clip), CameraSettings(play_speed=-1), SourceSection())
    src.open()
    try:
        assert len(list(src.frames(clock))) == 50 and clock.waits == []  # type: ignore[arg-type]
    finally:
        src.close()


async def test_missing_video_device_is_a_job_error(start_worker, tmp_path, router) -> None:
    """A /dev/video* camera that is not there: the job says why and retries; the worker carries on."""
    device = "/dev/video-facestack-missing0"
    worker = await start_worker(worker_config(tmp_path, router.url,
                                              source={"allowed_devices": [device]}))
    assert not Path(device).exists()
    status, body = await api(worker, "POST", "/job/usb", json={"stream_url": device})
    assert status == 201, body
    cam = worker.manager.get("usb")
    await wait_for(lambda: cam.status == "reconnecting", 15)
    status, body = await api(worker, "GET", "/job/usb")
    assert status == 200 and body["status"] == "reconnecting"
    assert f"cannot open {device}" in body["status_msg"] and "reconnecting in" in body["status_msg"]
    assert device in body["statistic"]["last_error"] and body["statistic"]["reconnects"] >= 1
    assert (await api(worker, "GET", "/healthz"))[1]["status"] == "ok"
    assert (await api(worker, "DELETE", "/job/usb"))[0] == 204
    assert router.posts == []


# --- geometry --------------------------------------------------------------------------------------

@pytest.mark.parametrize("rot, photo", [(90, "full"), (180, "full"), (270, "crop")])
async def test_rot_turns_the_camera_upright(start_worker, tmp_path, router, short_scene, short_clip, rotated_clip,
                                            patches, rot, photo) -> None:
    """A camera turned ``rot`` degrees counter-clockwise with ``rot: <rot>`` tracks as the upright
    camera does, and every post (bbox, landmarks, photo, face0) is in upright-frame pixels."""
    _, upright = await run_job(start_worker, tmp_path, router, short_clip, photo=photo, **EVERY_FRAME)
    _, turned = await run_job(start_worker, tmp_path, router, rotated_clip(rot), rot=rot, photo=photo,
                              **EVERY_FRAME)

    def faces(posts: list[dict[str, Any]]) -> dict[tuple[int, str | None], dict[str, Any]]:
        return {(p["detectorParams"]["frame_no"], who(short_scene, p)): p for p in posts if p["bs_type"] == "realtime"}

    def tracks(by_key: dict[tuple[int, str | None], dict[str, Any]]) -> set[frozenset]:
        groups: dict[int, set] = {}
        for key, p in by_key.items():
            groups.setdefault(p["detectorParams"]["track"], set()).add(key)
        return {frozenset(g) for g in groups.values()}

    ref, got = faces(upright), faces(turned)
    assert got.keys() == ref.keys() and len(got) == 24 and None not in {k[1] for k in got}
    assert tracks(got) == tracks(ref)
    assert overall(short_scene, turned) == overall(short_scene, upright)
    for key, post in got.items():
        p, r = post["detectorParams"], ref[key]["detectorParams"]
        assert p["frame_size"] == [640, 360]
        assert np.abs(np.subtract(p["frame_bbox"], r["frame_bbox"])).max() <= 6  # detection jitter
        x0, y0 = p["photo_offset"]
        frame_landmarks = np.add(p["landmarks"], [x0, y0])
        assert np.abs(frame_landmarks - np.add(r["landmarks"], r["photo_offset"])).max() <= 6
        # bbox and landmarks in photo pixels; the photo is the upright frame (or its crop)
        bx1, by1, bx2, by2 = post["bbox"][0]
        assert [bx1 + x0, by1 + y0, bx2 + x0, by2 + y0] == pytest.approx(p["frame_bbox"], abs=0.11)
        lm = np.asarray(p["landmarks"])
        assert (lm[:, 0] > bx1).all() and (lm[:, 0] < bx2).all() and (lm[:, 1] > by1).all() and (lm[:, 1] < by2).all()
        assert lm[0, 1] < lm[3, 1] and lm[1, 1] < lm[4, 1] and lm[0, 0] < lm[1, 0]  # eyes above mouth, left eye left
        shot = rgb(post["photo"])
        h, w = shot.shape[:2]
        assert (photo == "full") == ((w, h) == (640, 360))
        truth = clips.render(short_scene, patches, key[0])[y0:y0 + h, x0:x0 + w].astype(np.float32)
        assert np.abs(shot - truth).mean() < 6
        face0, ref_face0 = rgb(post["face0"]), rgb(ref[key]["face0"])
        assert np.abs(face0 - ref_face0).mean() < 0.5 * np.abs(face0 - ref_face0[::-1]).mean()


@pytest.mark.parametrize("clip_rot, roi, expected", [
    (0, [0, 180, 640, 360], {"biden", "kit"}),  # the bottom row
    (0, [0, 0, 640, 170], {"obama"}),  # the top row
    (0, [380, 180, 640, 360], {"kit"}),  # bottom right
    (0, [0, 180, 4000, 4000], {"biden", "kit"}),  # past the frame: cut to it
    (0, [700, 0, 900, 360], set()),  # outside the frame
    (90, [0, 180, 640, 360], {"biden", "kit"}),  # in pixels of the frame turned upright
])
async def test_roi(start_worker, tmp_path, router, short_scene, short_clip, rotated_clip, clip_rot, roi,
                   expected) -> None:
    """Faces inside the ROI are posted (in full-frame pixels), faces outside are not."""
    clip = rotated_clip(clip_rot) if clip_rot else short_clip
    cam, posts = await run_job(start_worker, tmp_path, router, clip, rot=clip_rot, roi=roi)
    assert Counter(who(short_scene, p) for p in posts) == Counter({name: 1 for name in expected})
    for post in posts:
        x1, y1, x2, y2 = post["bbox"][0]
        assert post["bbox"][0] == post["detectorParams"]["frame_bbox"]
        assert roi[0] <= x1 < x2 <= roi[2] and roi[1] <= y1 < y2 <= roi[3]
    assert cam.view()["statistic"]["frames_analysed"] == 10


# --- time ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [
    {"use_stream_timestamp": True, "start_stream_timestamp": 1_600_000_000.5},
    {"use_stream_timestamp": True},  # from the time the stream opened
    {"start_stream_timestamp": 1_600_000_000.5},  # ignored: the wall clock
])
async def test_stream_timestamps(start_worker, tmp_path, router, short_clip, settings) -> None:
    before = time.time()
    _, posts = await run_job(start_worker, tmp_path, router, short_clip, **EVERY_FRAME, **settings)
    after = time.time()
    assert len(posts) == 24 + 3
    stream = settings.get("use_stream_timestamp", False)
    start = settings.get("start_stream_timestamp") if stream else None
    bases = []
    for post in posts:
        p = post["detectorParams"]
        ts, stream_t = epoch(post["timestamp"]), p["frame_no"] / 25
        assert p["frame_time"] == pytest.approx(stream_t, abs=1e-3)
        if not stream:  # the wall clock when the frame was decoded
            assert before <= ts <= after and p["decoded_at"] == pytest.approx(ts, abs=1e-3)
            continue
        assert p["decoded_at"] is None
        bases.append(ts - stream_t)
        assert epoch(p["track_start"]) == pytest.approx(bases[-1] + p["track_start_frame"] / 25, abs=2e-3)
        if p["track_end_frame"] is not None:
            assert epoch(p["track_end"]) == pytest.approx(bases[-1] + p["track_end_frame"] / 25, abs=2e-3)
    if start is not None:  # start + stream time, to the millisecond
        assert bases == pytest.approx([start] * len(bases), abs=1.5e-3)
        assert posts[0]["timestamp"] == rfc3339(start + posts[0]["detectorParams"]["frame_no"] / 25)
    elif stream:  # one base: the time the stream opened
        assert max(bases) - min(bases) < 2e-3 and before - 1e-3 <= bases[0] <= after


# --- what is posted --------------------------------------------------------------------------------

def size_of(post: dict[str, Any]) -> float:
    x1, y1, x2, y2 = post["detectorParams"]["frame_bbox"]
    return float(np.sqrt((x2 - x1) * (y2 - y1)))


@pytest.mark.parametrize("settings, expected", [
    ({"filter_min_size": 40}, {"big", "small"}),
    ({"filter_min_size": 70}, {"big"}),
    ({"filter_min_size": 40, "filter_max_size": 70}, {"small"}),
    ({"filter_min_size": 120}, set()),
    ({"filter_min_size": 40, "filter_min_quality": 0.45}, {"big"}),
    ({"filter_min_size": 40, "filter_min_quality": 0.95}, set()),
])
async def test_face_filters(start_worker, tmp_path, router, sizes_clip, settings, expected) -> None:
    """``sizes_clip``: a ~95 px face of quality ~0.65 (left) and a ~46 px one of quality ~0.25."""
    cam, posts = await run_job(start_worker, tmp_path, router, sizes_clip, overall_only=False,
                               realtime_post_interval=0.2, realtime_post_every_interval=True, **settings)
    posted = Counter("big" if p["detectorParams"]["frame_bbox"][0] < 320 else "small"
                     for p in posts if p["bs_type"] == "overall")
    assert posted == Counter({name: 1 for name in expected})
    for post in posts:
        assert settings["filter_min_size"] <= size_of(post) <= settings.get("filter_max_size", 8192)
        assert post["detectorParams"]["quality"] >= settings.get("filter_min_quality", 0.1)
    if "big" in expected:  # every analysed frame of the face passed
        assert sum(1 for p in posts if p["bs_type"] == "realtime" and p["detectorParams"]["frame_bbox"][0] < 320) == 10
    if settings["filter_min_size"] == 40:  # both faces are found (and tracked) whether posted or not
        assert cam.view()["statistic"]["faces_detected"] == 20


async def test_realtime_flags(start_worker, tmp_path, router, short_scene, short_clip) -> None:
    """``realtime_post_first_immediately`` adds the first face of each track, posted at once;
    ``realtime_post_every_interval`` posts every interval's best, not only improvements."""
    runs: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
    for first, every in itertools.product([False, True], repeat=2):
        _, runs[first, every] = await run_job(
            start_worker, tmp_path, router, short_clip, overall_only=False, realtime_post_interval=0.5,
            realtime_post_first_immediately=first, realtime_post_every_interval=every)

    def realtime(posts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for p in posts:
            if p["bs_type"] == "realtime":
                out.setdefault(who(short_scene, p), []).append(p["detectorParams"])
        return out

    for posts in runs.values():
        assert overall(short_scene, posts) == overall(short_scene, runs[False, False])
        assert Counter(who(short_scene, p) for p in posts if p["bs_type"] == "overall") == SHORT_TRACKS
    rt = {flags: realtime(posts) for flags, posts in runs.items()}
    for person in SHORT_TRACKS:
        # at once: the track's first frame, while the track is live, before any other post of it
        for flags in [(True, True), (True, False)]:
            first = rt[flags][person][0]
            assert first["frame_no"] == first["track_start_frame"] and first["track_end_frame"] is None
        assert len(rt[True, True][person]) == len(rt[False, True][person]) + 1
        seen = rt[True, True][person][-1]["track_end_frame"] - rt[True, True][person][0]["track_start_frame"]
        assert len(rt[False, True][person]) >= int(seen / 25 / 0.5)  # one per 0.5 s interval at least
        for flags in [(False, False), (True, False)]:
            qualities = [p["quality"] for p in rt[flags][person]]
            assert qualities == sorted(set(qualities)), (flags, person, qualities)  # only improvements
            assert len(qualities) <= len(rt[flags[0], True][person])
