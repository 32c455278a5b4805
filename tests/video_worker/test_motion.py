"""The motion gate (``imotion_threshold``, ``motion_gate_max_skip_s``): the measure, the rule, and
whole jobs on generated clips with the gate off and on."""
from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import av
import numpy as np
import pytest

from facestack.core.configfile import validate
from tests.video_worker.conftest import worker_config
from tests.video_worker.test_settings import EVERY_FRAME, run_job, who
from video_worker.config import CameraSettings
from video_worker.motion import CELL_DELTA, MotionGate, motion, thumbnail

GATE = {"imotion_threshold": 0.005}


def yuv(rgb: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def background(h: int = 1080, w: int = 1920) -> np.ndarray:
    frame = np.full((h, w, 3), 96, np.uint8)
    frame[:, :, 2] = 110
    return frame


# --- the measure -----------------------------------------------------------------------------------

def test_thumbnail_shape_rot_and_roi() -> None:
    frame = yuv(background())
    assert thumbnail(frame).shape == (36, 64) and thumbnail(frame).dtype == np.uint8
    assert thumbnail(frame, rot=90).shape == (64, 36)
    # roi in turned-frame pixels: the right half of a 1920x1080 frame, and a 1080x1920 one's top half
    assert thumbnail(frame, roi=(960, 0, 1920, 1080)).shape == (36, 32)
    assert thumbnail(frame, rot=270, roi=(0, 0, 1080, 960)).shape == (32, 36)
    assert thumbnail(yuv(background(480, 640))).shape == (48, 64)


def test_motion_is_the_changed_fraction_and_ignores_noise() -> None:
    still = background()
    base = thumbnail(yuv(still))
    assert motion(base, thumbnail(yuv(still))) == 0.0
    noisy = np.clip(still + np.random.default_rng(1).normal(0, 20, still.shape), 0, 255).astype(np.uint8)
    assert motion(base, thumbnail(yuv(noisy))) == 0.0  # a cell averages ~900 pixels
    moved = still.copy()
    moved[300:600, 600:900] = 230  # 300 x 300 px = 10 x 10 cells
    assert motion(base, thumbnail(yuv(moved))) == pytest.approx(100 / (64 * 36), abs=25 / (64 * 36))
    # outside the roi it does not count
    roi = (0, 0, 480, 1080)
    assert motion(thumbnail(yuv(still), roi=roi), thumbnail(yuv(moved), roi=roi)) == 0.0
    assert motion(base, thumbnail(yuv(background(480, 640)))) == 1.0  # the stream changed shape
    assert CELL_DELTA > 0


def test_gate_rule() -> None:
    gate = MotionGate(0.01, max_skip_s=2.0)
    a = np.zeros((36, 64), np.uint8)
    b = a.copy()
    b[:10, :10] = 200  # 100 / 2304 = 4% changed
    c = a.copy()
    c[0, :10] = 200  # 10 / 2304 = 0.4%: below the threshold
    assert gate.analyse(a, 0.0, tracks_live=False)  # (a) the first frame
    assert not gate.analyse(a, 0.2, tracks_live=False)
    assert not gate.analyse(c, 0.4, tracks_live=False)
    assert gate.analyse(a, 0.6, tracks_live=True)  # (b) a live track
    assert gate.analyse(b, 0.8, tracks_live=False)  # (c) motion: b is the reference now
    assert not gate.analyse(b, 1.0, tracks_live=False)
    assert not gate.analyse(b, 2.6, tracks_live=False)
    assert gate.analyse(b, 2.8, tracks_live=False)  # (d) 2 s since the last analysed frame
    # slow change adds up against the last analysed frame, not the previous sampled one
    gate = MotionGate(0.01, max_skip_s=0)
    ramp = [a.copy() for _ in range(4)]
    for i, thumb in enumerate(ramp):
        thumb[:10, :10] = 8 * i  # 8 grey levels a frame: each step is below CELL_DELTA
    assert [gate.analyse(x, i * 0.2, False) for i, x in enumerate(ramp)] == [True, False, True, False]
    assert not gate.analyse(ramp[2], 100.0, False)  # no max skip
    gate.reset()
    assert gate.analyse(ramp[2], 100.2, False)  # a new connection


def test_settings() -> None:
    s = CameraSettings()
    assert s.imotion_threshold == 0 and s.motion_gate_max_skip_s == 2.0
    for bad in ({"imotion_threshold": -0.1}, {"imotion_threshold": 1.5}, {"motion_gate_max_skip_s": -1}):
        with pytest.raises(Exception, match="imotion_threshold|motion_gate_max_skip_s"):
            validate(CameraSettings, bad, "<test>")


# --- whole jobs ------------------------------------------------------------------------------------

def keys(scene: Any, posts: list[dict[str, Any]]) -> Counter:
    """What each post says: type, person, frame, track span, box."""
    def key(p: dict[str, Any]) -> tuple:
        d = p["detectorParams"]
        return (p["bs_type"], who(scene, p), d["frame_no"], d["track_start_frame"], d["track_end_frame"],
                tuple(p["bbox"][0]))
    return Counter(map(key, posts))


async def test_idle_stretch_is_skipped_and_the_person_posted_as_without_gate(
        start_worker, tmp_path, router, walk_in_clip) -> None:
    """3 s of nobody, a person walks in, stands still longer than the miss interval, walks out,
    3 s of nobody: the gate skips most empty frames and posts exactly what the ungated job posts
    (a realtime post for every face of every analysed frame, and the overall one)."""
    clip, scene = walk_in_clip
    off_cam, off = await run_job(start_worker, tmp_path, router, clip, **EVERY_FRAME)
    on_cam, on = await run_job(start_worker, tmp_path, router, clip, **EVERY_FRAME, **GATE)
    assert Counter(who(scene, p) for p in off if p["bs_type"] == "overall") == Counter({"obama": 1})
    assert keys(scene, on) == keys(scene, off)
    assert len(on) == len(off) > 10
    off_st, on_st = off_cam.view()["statistic"], on_cam.view()["statistic"]
    assert off_st["frames_analysed"] == 70 and off_st["frames_skipped_motion"] == 0
    assert on_st["frames_analysed"] + on_st["frames_skipped_motion"] == 70
    assert on_st["tracks"] == off_st["tracks"] == 1 and on_st["faces_detected"] == off_st["faces_detected"]
    # sampled frames with nobody in view: 0-2.8 s and 11-13.8 s (30); only the first frame, the
    # 2 s max-skip wake-ups and the miss interval after the person left are analysed
    empty = [i for i in range(0, 350, 5) if all(a.where(i) is None for a in scene.appearances)]
    assert len(empty) == 30
    assert on_st["frames_skipped_motion"] >= 2 * len(empty) // 3, on_st
    track_end = next(p for p in on if p["bs_type"] == "overall")["detectorParams"]["track_end_frame"]
    assert track_end >= 7 * 25  # the track lived through the still stretch (one track, see above)


async def test_skipped_frames_are_a_metric(start_worker, tmp_path, router, walk_in_clip) -> None:
    clip, _ = walk_in_clip
    spec = {"id": "cam1", "stream_url": str(clip), "single_pass": True, "settings": {**GATE}}
    worker = await start_worker(worker_config(tmp_path, router.url, [spec]), serve=False)
    cam = worker.manager.get("cam1")
    await asyncio.wait_for(cam.finished.wait(), 60)
    text = worker.metrics.render().decode()
    skipped = cam.stats.frames_skipped_motion
    assert skipped >= 20 and f'video_worker_frames_skipped_motion_total{{camera="cam1"}} {float(skipped)}' in text


async def test_still_face_is_found_by_max_skip_and_kept(start_worker, tmp_path, router, still_clip) -> None:
    """A face that appears without enough motion to pass the gate (a high threshold here) and then
    stands still for 3.4 s: ``motion_gate_max_skip_s`` finds it within that interval, and its track
    is kept (every frame analysed while it lives) to the end, ending where the ungated one does.
    With no max skip it is never found."""
    clip, scene = still_clip
    _, off = await run_job(start_worker, tmp_path, router, clip)
    cam, on = await run_job(start_worker, tmp_path, router, clip, imotion_threshold=0.2,
                            motion_gate_max_skip_s=1.0)
    blind_cam, blind = await run_job(start_worker, tmp_path, router, clip, imotion_threshold=0.2,
                                     motion_gate_max_skip_s=0)
    assert len(off) == len(on) == 1 and who(scene, off[0]) == who(scene, on[0]) == "obama"
    d_off, d_on = off[0]["detectorParams"], on[0]["detectorParams"]
    assert d_off["track_start_frame"] == 15 and d_on["track_start_frame"] == 25  # found at the 1 s wake-up
    assert d_on["track_end_frame"] == d_off["track_end_frame"] == 95
    st = cam.view()["statistic"]
    assert st["tracks"] == 1 and st["frames_analysed"] == 1 + 15 and st["frames_skipped_motion"] == 4
    assert blind == [] and blind_cam.view()["statistic"]["frames_skipped_motion"] == 19


async def test_threshold_zero_is_off_and_busy_scenes_are_unchanged(start_worker, tmp_path, router,
                                                                   people_clip) -> None:
    """0 (the default) is off: nothing is gated, every sampled frame is converted in the decode
    thread and analysed as before. With the gate on, a scene where someone is always in view is
    analysed frame for frame and posts the same."""
    clip, scene = people_clip
    runs = [await run_job(start_worker, tmp_path, router, clip, **settings)
            for settings in ({}, {"imotion_threshold": 0}, GATE)]
    for (cam, posts), gated in zip(runs, (False, False, True)):
        st = cam.view()["statistic"]
        assert (cam._gate is not None) == gated
        assert st["frames_analysed"] == 20 and st["frames_skipped_motion"] == 0
        assert Counter(who(scene, p) for p in posts) == Counter({"obama": 1, "biden": 2, "kit": 1})
        assert keys(scene, posts) == keys(scene, runs[0][1])
